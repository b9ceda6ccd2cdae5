package gateway

import (
	"time"

	jetonv1alpha1 "github.com/jeton-dev/jeton/api/v1alpha1"
	"github.com/jeton-dev/jeton/internal/emulator"
)

// emulatorRequest is what the emulator recorded of one request: time, status, recipient,
// whether a token header came (never a token or another query value).
type emulatorRequest = emulator.Request

// requestsSince returns the requests the emulator saw with the token of id, from the
// mark-th on.
func (w *world) requestsSince(id string, mark int) []emulatorRequest {
	r := w.emu.Requests(id)
	if mark >= len(r) {
		return nil
	}
	return r[mark:]
}

// floodEmulatorOptions scale the API Entreprise limits down for the flood, enforced by the
// emulator as the API does (fixed windows, real 429s).
func floodEmulatorOptions() []emulator.Option {
	return []emulator.Option{emulator.WithLimits(jetonv1alpha1.APIEntreprise, emulator.Limits{
		PerToken: floodPerToken, TokenPeriod: time.Minute, PerIP: floodPerIP, IPPeriod: time.Minute})}
}

// floodStats is what the API saw of the flood.
type floodStats struct {
	total, upstream429, maxPerToken, maxPerIP int
}

func (w *world) floodStats(clients []*tenant) floodStats {
	var st floodStats
	for _, c := range clients {
		st.total += len(w.emu.Requests(c.tokenID))
		st.maxPerToken = max(st.maxPerToken, w.emu.MaxInWindow(c.tokenID, time.Minute))
	}
	st.upstream429 = w.emu.TotalTooManyRequests()
	for _, n := range w.emu.MaxInWindowPerIP(jetonv1alpha1.APIEntreprise, time.Minute) {
		st.maxPerIP = max(st.maxPerIP, n)
	}
	return st
}
