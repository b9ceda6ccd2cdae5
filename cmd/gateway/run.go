package main

import "errors"

// run serves until SIGTERM. (Being written: see issue 22.)
func run(cfg *config) error {
	_ = cfg
	return errors.New("not yet")
}
