package usbip_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbip"
	"github.com/stretchr/testify/require"
)

// FuzzServeConn imports the key and then sends arbitrary bytes as URB traffic (or, with the
// first flag bit clear, as the operation itself): the connection ends without a panic or a hang,
// with a protocol error or at EOF, and the next client can import the key.
func FuzzServeConn(f *testing.F) {
	setup := func(rt, req byte, value, length uint16) [8]byte {
		return usbdev.Setup{RequestType: rt, Request: req, Value: value, Length: length}.Bytes()
	}
	seeds := [][]byte{
		usbip.Submit{Seqnum: 1, Direction: usbip.DirIn, Length: 18, NumberOfPackets: 0xffffffff, Setup: setup(0x80, 6, 0x0100, 18)}.Encode(),
		append(usbip.Submit{Seqnum: 2, Length: 0, NumberOfPackets: 0xffffffff, Setup: setup(0, 9, 1, 0)}.Encode(),
			usbip.Submit{Seqnum: 3, Direction: usbip.DirIn, EP: 1, Length: 64, NumberOfPackets: 0xffffffff}.Encode()...),
		usbip.Submit{Seqnum: 4, EP: 1, Length: 64, Data: append([]byte{0xff, 0xff, 0xff, 0xff, 0x86, 0, 8}, make([]byte, 57)...)}.Encode(),
		usbip.Unlink{Seqnum: 5, UnlinkSeqnum: 3}.Encode(),
	}
	for _, s := range seeds {
		f.Add(s, byte(1))
	}
	f.Add(usbip.OpHeader{Version: usbip.Version, Code: usbip.OpReqDevlist}.Encode(), byte(0))

	k, err := emulator.Open(emulator.Options{})
	require.NoError(f, err)
	f.Cleanup(func() { _ = k.Close() })
	srv, err := usbip.NewServer(usbip.Config{Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k})
	require.NoError(f, err)
	var busid [32]byte
	copy(busid[:], usbip.DefaultBusID)
	importReq := append(usbip.OpHeader{Version: usbip.Version, Code: usbip.OpReqImport}.Encode(), busid[:]...)

	f.Fuzz(func(t *testing.T, data []byte, flags byte) {
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), server) }()
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, client); close(drained) }()
		if flags&1 != 0 {
			_, _ = client.Write(importReq)
		}
		_, _ = client.Write(data)
		client.Close()
		select {
		case err := <-done:
			if err != nil {
				require.ErrorIs(t, err, usbip.ErrProtocol)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not end after the client hung up")
		}
		<-drained
	})
}
