package ctap

// The hand-written encoder of the getAssertion response; see getassertion_fast.go for why.

// appendHead appends the shortest head of a data item of the given major type and argument.
func appendHead(dst []byte, major byte, arg uint64) []byte {
	mt := major << 5
	switch {
	case arg < 24:
		return append(dst, mt|byte(arg))
	case arg <= 0xff:
		return append(dst, mt|24, byte(arg))
	case arg <= 0xffff:
		return append(dst, mt|25, byte(arg>>8), byte(arg))
	case arg <= 0xffffffff:
		return append(dst, mt|26, byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
	}
	return append(dst, mt|27, byte(arg>>56), byte(arg>>48), byte(arg>>40), byte(arg>>32),
		byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
}

// headLen is the length of the shortest head for arg.
func headLen(arg uint64) int {
	switch {
	case arg < 24:
		return 1
	case arg <= 0xff:
		return 2
	case arg <= 0xffff:
		return 3
	case arg <= 0xffffffff:
		return 5
	}
	return 9
}

// appendBytes appends a byte string, or null for a nil slice as the generic encoder does.
func appendBytes(dst, v []byte) []byte {
	if v == nil {
		return append(dst, 0xf6)
	}
	return append(appendHead(dst, majorBytes, uint64(len(v))), v...)
}

func appendText(dst []byte, v string) []byte {
	return append(appendHead(dst, majorText, uint64(len(v))), v...)
}

func bytesLen(v []byte) int {
	if v == nil {
		return 1
	}
	return headLen(uint64(len(v))) + len(v)
}

func textLen(v string) int { return headLen(uint64(len(v))) + len(v) }

// appendInt appends a CBOR integer: unsigned for v >= 0, negative otherwise.
func appendInt(dst []byte, v int) []byte {
	if v < 0 {
		return appendHead(dst, 1, uint64(-(v + 1)))
	}
	return appendHead(dst, majorUint, uint64(v))
}

// marshalGetAssertionResponse encodes r after the CTAP2_OK status byte, byte for byte as the
// generic CTAP2 canonical encoder does: map keys in canonical (length-first) order, shortest
// heads, omitempty fields left out. ok is false for a response it does not cover (a nil r, a
// credential with transports); the caller then uses the generic encoder.
func marshalGetAssertionResponse(r *GetAssertionResponse) ([]byte, bool) {
	if r == nil || (r.Credential != nil && len(r.Credential.Transports) > 0) {
		return nil, false
	}
	pairs, size := uint64(2), 1+1+1+bytesLen(r.AuthData)+1+bytesLen(r.Signature)
	if c := r.Credential; c != nil {
		pairs++
		size += 1 + 1 + 3 + bytesLen(c.ID) + 5 + textLen(c.Type)
	}
	if u := r.User; u != nil {
		pairs++
		size += 1 + 1 + 3 + bytesLen(u.ID)
		for _, f := range [...]string{u.Icon, u.Name, u.DisplayName} {
			if f != "" {
				size += 12 + textLen(f) // the longest key, "displayName", takes 12 bytes
			}
		}
	}
	if r.NumberOfCredentials != 0 {
		pairs++
		size += 1 + 9
	}
	if r.UserSelected != nil {
		pairs++
		size += 2
	}
	if len(r.LargeBlobKey) > 0 {
		pairs++
		size += 1 + bytesLen(r.LargeBlobKey)
	}
	out := make([]byte, 0, size)
	out = append(out, byte(StatusOK))
	out = appendHead(out, majorMap, pairs)
	if c := r.Credential; c != nil {
		out = append(out, 0x01, 0xa2, 0x62, 'i', 'd')
		out = appendBytes(out, c.ID)
		out = append(out, 0x64, 't', 'y', 'p', 'e')
		out = appendText(out, c.Type)
	}
	out = appendBytes(append(out, 0x02), r.AuthData)
	out = appendBytes(append(out, 0x03), r.Signature)
	if u := r.User; u != nil {
		n := uint64(1)
		for _, f := range [...]string{u.Icon, u.Name, u.DisplayName} {
			if f != "" {
				n++
			}
		}
		out = appendHead(append(out, 0x04), majorMap, n)
		out = appendBytes(append(out, 0x62, 'i', 'd'), u.ID)
		// Canonical order: shorter keys first, then bytewise: icon, name, displayName.
		if u.Icon != "" {
			out = appendText(appendText(out, "icon"), u.Icon)
		}
		if u.Name != "" {
			out = appendText(appendText(out, "name"), u.Name)
		}
		if u.DisplayName != "" {
			out = appendText(appendText(out, "displayName"), u.DisplayName)
		}
	}
	if r.NumberOfCredentials != 0 {
		out = appendInt(append(out, 0x05), r.NumberOfCredentials)
	}
	if r.UserSelected != nil {
		v := byte(0xf4)
		if *r.UserSelected {
			v = 0xf5
		}
		out = append(out, 0x06, v)
	}
	if len(r.LargeBlobKey) > 0 {
		out = appendBytes(append(out, 0x07), r.LargeBlobKey)
	}
	return out, true
}
