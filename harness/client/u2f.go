package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/u2f"
)

// U2FError is a U2F status word other than SW_NO_ERROR. errors.As(err, &sw) with a
// u2f.StatusWord, and errors.Is(err, u2f.SWWrongData), reach the status word.
type U2FError struct {
	Command string
	SW      u2f.StatusWord
}

func (e *U2FError) Error() string { return e.Command + ": key answered " + e.SW.String() }

// Unwrap exposes the status word.
func (e *U2FError) Unwrap() error { return e.SW }

var u2fNames = map[byte]string{u2f.InsRegister: "U2F_REGISTER", u2f.InsAuthenticate: "U2F_AUTHENTICATE", u2f.InsVersion: "U2F_VERSION"}

// msg sends one APDU once and returns the response data and status word.
func (c *Client) msg(ctx context.Context, cmd u2f.Command) ([]byte, u2f.StatusWord, error) {
	name := u2fNames[cmd.INS]
	apdu, err := cmd.Encode()
	if err != nil {
		return nil, 0, fmt.Errorf("client: encoding %s: %w", name, err)
	}
	start := time.Now()
	resp, err := c.t.Msg(ctx, apdu)
	ex := Exchange{Command: name, U2F: true, Request: clone(apdu), Response: clone(resp), Duration: time.Since(start), Err: err}
	var (
		data []byte
		sw   u2f.StatusWord
		perr error
	)
	if err == nil {
		data, sw, perr = u2f.ParseResponse(resp)
		ex.SW = uint16(sw)
		if sw != u2f.SWNoError {
			ex.Status = ctap.ErrOther
		}
	}
	c.record(ex)
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("client: %s: %w", name, err)
	case perr != nil:
		return nil, 0, fmt.Errorf("%w: %s: %v", ErrMalformedResponse, name, perr)
	}
	return data, sw, nil
}

// msgUntilPresent repeats an APDU while the key answers SW_CONDITIONS_NOT_SATISFIED (waiting for a
// touch), as hosts do, until it answers otherwise or ctx ends.
func (c *Client) msgUntilPresent(ctx context.Context, cmd u2f.Command) ([]byte, error) {
	name := u2fNames[cmd.INS]
	for {
		data, sw, err := c.msg(ctx, cmd)
		if err != nil {
			return nil, err
		}
		switch sw {
		case u2f.SWNoError:
			return data, nil
		case u2f.SWConditionsNotSatisfied:
		default:
			return nil, &U2FError{Command: name, SW: sw}
		}
		t := time.NewTimer(c.u2fPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("client: %s: no user presence: %w", name, errors.Join(&U2FError{Command: name, SW: sw}, ctx.Err()))
		case <-t.C:
		}
	}
}

// U2FRegistration is a decoded U2F_REGISTER answer.
type U2FRegistration = u2f.RegisterResponse

// U2FAssertion is a decoded U2F_AUTHENTICATE answer.
type U2FAssertion = u2f.AuthenticateResponse

// Register creates a U2F credential for app (the application parameter, SHA-256 of the AppID),
// polling until the user touches the key or ctx ends.
func (c *Client) Register(ctx context.Context, challenge, app [32]byte) (*U2FRegistration, error) {
	data, err := c.msgUntilPresent(ctx, u2f.RegisterRequest{Challenge: challenge, Application: app}.Command())
	if err != nil {
		return nil, err
	}
	r, err := u2f.ParseRegisterResponse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: U2F_REGISTER: %v", ErrMalformedResponse, err)
	}
	return &r, nil
}

// Authenticate signs challenge with the credential keyHandle for app. With
// u2f.ControlCheckOnly the key never signs: a nil error is impossible, and an error wrapping
// u2f.SWConditionsNotSatisfied means the key handle is this key's. Other controls poll for a touch
// as long as the key asks for one.
func (c *Client) Authenticate(ctx context.Context, control u2f.Control, challenge, app [32]byte, keyHandle []byte) (*U2FAssertion, error) {
	cmd, err := u2f.AuthenticateRequest{Control: control, Challenge: challenge, Application: app, KeyHandle: keyHandle}.Command()
	if err != nil {
		return nil, err
	}
	var data []byte
	if control == u2f.ControlCheckOnly {
		d, sw, err := c.msg(ctx, cmd)
		if err != nil {
			return nil, err
		}
		if sw != u2f.SWNoError {
			return nil, &U2FError{Command: "U2F_AUTHENTICATE", SW: sw}
		}
		data = d
	} else if data, err = c.msgUntilPresent(ctx, cmd); err != nil {
		return nil, err
	}
	r, err := u2f.ParseAuthenticateResponse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: U2F_AUTHENTICATE: %v", ErrMalformedResponse, err)
	}
	return &r, nil
}

// Version returns the U2F protocol version the key reports ("U2F_V2").
func (c *Client) Version(ctx context.Context) (string, error) {
	data, sw, err := c.msg(ctx, u2f.VersionCommand())
	if err != nil {
		return "", err
	}
	if sw != u2f.SWNoError {
		return "", &U2FError{Command: "U2F_VERSION", SW: sw}
	}
	return string(data), nil
}
