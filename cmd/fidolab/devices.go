package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/fidolab/fidolab/transport/hidraw"
	"github.com/fidolab/fidolab/transport/usb"
)

// hidrawEnum is where `fidolab devices` looks for hidraw nodes; tests point it at a fake sysfs.
var hidrawEnum hidraw.Enumerator

// deviceRow is one key `fidolab devices` lists, with the --key value that reaches it.
type deviceRow struct {
	Key       string `json:"key"`       // the value for fidolab run --key
	Transport string `json:"transport"` // hidraw or usb
	Path      string `json:"path,omitempty"`
	VendorID  string `json:"vendorId"` // 4 hex digits
	ProductID string `json:"productId"`
	Bus       string `json:"bus,omitempty"`
	Product   string `json:"product"`
	Serial    string `json:"serial,omitempty"`
	FIDO      bool   `json:"fido"`
	// Accessible is false when this user may not open the device (a udev rule is missing).
	Accessible bool   `json:"accessible"`
	Problem    string `json:"problem,omitempty"`
}

// cmdDevices lists the FIDO keys plugged into this machine.
func cmdDevices(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab devices", stderr)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	all := fs.Bool("all", false, "list every hidraw device, FIDO or not (to see why a key is missing)")
	viaUSB := fs.Bool("usb", false, "list USB devices through libusb instead of hidraw (a build with -tags gousb)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("devices takes no arguments")
	}
	var rows []deviceRow
	if *viaUSB {
		devs, err := usb.List()
		if err != nil {
			return err
		}
		for _, d := range devs {
			product := d.Product
			if d.Manufacturer != "" {
				product = d.Manufacturer + " " + product
			}
			rows = append(rows, deviceRow{Key: "usb:" + d.Spec().String(), Transport: "usb",
				VendorID: fmt.Sprintf("%04x", d.VendorID), ProductID: fmt.Sprintf("%04x", d.ProductID),
				Bus: fmt.Sprintf("usb %d/%d", d.Bus, d.Address), Product: product, Serial: d.Serial,
				FIDO: true, Accessible: d.Problem == "", Problem: d.Problem})
		}
	} else {
		devs, err := hidrawEnum.List(*all)
		if err != nil {
			return err
		}
		for _, d := range devs {
			rows = append(rows, deviceRow{Key: "hidraw:" + d.Path, Transport: "hidraw", Path: d.Path,
				VendorID: fmt.Sprintf("%04x", d.VendorID), ProductID: fmt.Sprintf("%04x", d.ProductID),
				Bus: d.BusName(), Product: d.Product, Serial: d.Serial, FIDO: d.FIDO, Accessible: d.Accessible,
				Problem: d.Problem})
		}
	}
	if *asJSON {
		if rows == nil {
			rows = []deviceRow{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		what := "no FIDO key found on hidraw"
		if *viaUSB {
			what = "no FIDO-shaped USB device found"
		} else if *all {
			what = "no hidraw device found"
		}
		_, err := fmt.Fprintln(stdout, what+" (plugged in? see docs/transports.md)")
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVID:PID\tBUS\tPRODUCT\tSERIAL\tNOTE")
	for _, r := range rows {
		note := ""
		switch {
		case !r.FIDO:
			note = "not FIDO"
		case !r.Accessible:
			note = "no access for this user (udev rule: docs/transports.md)"
		}
		if r.Problem != "" {
			note = join(note, r.Problem)
		}
		fmt.Fprintf(tw, "%s\t%s:%s\t%s\t%s\t%s\t%s\n", dash(r.Key), r.VendorID, r.ProductID, r.Bus, dash(r.Product), dash(r.Serial), dash(note))
	}
	return tw.Flush()
}

// dash prints a device's string for a person: "-" when empty, control characters (which a device
// chose and could drive the terminal with) as "?".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
