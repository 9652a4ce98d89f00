package usbredir_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbredir"
	"github.com/fidolab/fidolab/transport/usbredir/usbredirtest"
	"github.com/stretchr/testify/require"
)

// FuzzServeConn sends a guest hello and then arbitrary bytes to the server: whatever they are,
// the connection ends (with a protocol error or at EOF) without a panic and without hanging, and
// the key still answers the next guest.
func FuzzServeConn(f *testing.F) {
	n := usbredir.Negotiate(usbredirtest.Caps, usbredir.OurCaps)
	add := func(ps ...usbredir.Packet) {
		var b []byte
		for _, p := range ps {
			b = usbredir.AppendPacket(b, n, p)
		}
		f.Add(b)
	}
	add(usbredir.Packet{Type: usbredir.TypeSetConfiguration, ID: 1, Header: []byte{1}},
		usbredir.Packet{Type: usbredir.TypeStartInterruptReceiving, ID: 2, Header: []byte{0x81}},
		usbredir.Packet{Type: usbredir.TypeInterruptPacket, ID: 3, Header: usbredir.InterruptHeader{Endpoint: 1, Length: 64}.Encode(),
			Data: append([]byte{0xff, 0xff, 0xff, 0xff, 0x86, 0, 8}, make([]byte, 57)...)})
	add(usbredir.Packet{Type: usbredir.TypeControlPacket, ID: 5, Header: usbredir.ControlHeader{RequestType: 0x80, Request: 6, Value: 0x0200, Length: 255}.Encode()})
	add(usbredir.Packet{Type: usbredir.TypeFilterFilter, Data: []byte("0x03,-1,-1,-1,1\x00")}, usbredir.Packet{Type: usbredir.TypeReset})
	add(usbredir.Packet{Type: usbredir.TypeDeviceDisconnectAck}, usbredir.Packet{Type: usbredir.TypeCancelDataPacket, ID: 3})

	k, err := emulator.Open(emulator.Options{})
	require.NoError(f, err)
	f.Cleanup(func() { _ = k.Close() })
	srv := usbredir.NewServer(usbredir.Config{Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k})
	hello := usbredir.AppendPacket(nil, usbredir.Negotiated{}, usbredir.Packet{Type: usbredir.TypeHello,
		Header: usbredir.EncodeHello(usbredir.Hello{Version: "fuzz", Caps: usbredirtest.Caps})})

	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), server) }()
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, client); close(drained) }()
		_, _ = client.Write(hello)
		_, _ = client.Write(data)
		client.Close()
		select {
		case err := <-done:
			if err != nil {
				require.ErrorIs(t, err, usbredir.ErrProtocol)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not end after the guest hung up")
		}
		<-drained
	})
}
