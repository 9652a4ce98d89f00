//go:build !((amd64 || arm64 || ppc64le || s390x) && !purego)

package signer

import "filippo.io/nistec"

// jacobian: nistec's portable P256Point keeps its coordinates behind pointers to fiat elements,
// which this package does not read; each nonce point is converted with BytesX.
// Never called: jacobianOK is false.
func jacobian(*nistec.P256Point) (x, z *fieldElement) { return nil, nil }

// jacobianOK is false: see jacobian.
const jacobianOK = false
