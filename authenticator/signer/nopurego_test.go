//go:build !purego

package signer

const purego = false
