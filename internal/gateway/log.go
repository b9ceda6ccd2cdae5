package gateway

import (
	"io"
	"log"
)

// discardLog silences net/http's own error logs, which print URLs.
var discardLog = log.New(io.Discard, "", 0)
