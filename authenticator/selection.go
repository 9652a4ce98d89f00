package authenticator

import (
	"context"

	"github.com/fidolab/fidolab/authenticator/user"
)

// selection is authenticatorSelection (§6.9): the user touches the key they mean to use.
func (a *Authenticator) selection(ctx context.Context, r *request) (any, error) {
	return nil, a.askUser(ctx, r, user.Presence, "")
}
