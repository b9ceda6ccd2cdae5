package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/conditions"
	"github.com/jeton-dev/jeton/internal/tokensource"
)

// readToken reads the token of src from its Secret in the cache (tokensource.Reader.Read),
// after refusing the owner-proof key and the gateway credential key: no Habilitation or TechnicalToken may read it, not
// even to say why it is not a token. err is a failure to read the cache, never a refusal.
func readToken(ctx context.Context, c client.Reader, opts Options, src tokensource.Reader) (tokensource.Token, *conditions.Verdict, error) {
	if opts.isOwnerKey(src.Namespace, src.Ref.Name) {
		return tokensource.Token{}, &conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonInvalidToken, Warning: true,
			Message: fmt.Sprintf(ownerKeyRefused, src.Namespace, src.Ref.Name)}, nil
	}
	if opts.isGatewayKey(src.Namespace, src.Ref.Name) {
		return tokensource.Token{}, &conditions.Verdict{State: conditions.Stalled, Reason: jetonv1alpha1.ReasonInvalidToken, Warning: true,
			Message: fmt.Sprintf(gatewayKeyRefused, src.Namespace, src.Ref.Name)}, nil
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: src.Namespace, Name: src.Ref.Name}, s); err != nil {
		if !apierrors.IsNotFound(err) {
			return tokensource.Token{}, nil, err
		}
		s = nil
	}
	tok, v := src.Read(s)
	return tok, v, nil
}
