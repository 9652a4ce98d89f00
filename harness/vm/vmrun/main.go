// Command vmrun boots fidolab's test guest (package harness/vm) by hand: to run a script in it, to
// get a shell in it, or to see what the cache holds.
//
//	go run ./harness/vm/vmrun [flags] SCRIPT.sh [-- QEMU ARGS...]   run a script, exit with its status
//	go run ./harness/vm/vmrun -shell [-- QEMU ARGS...]              interactive shell on the serial console
//	go run ./harness/vm/vmrun -prepare                              build or check the cached image
//
// -fidolab puts a static build of ./cmd/fidolab at /usr/bin/fidolab; -file HOST:GUEST adds files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/fidolab/fidolab/harness/vm"
)

type fileFlags []vm.File

func (f *fileFlags) String() string { return "" }
func (f *fileFlags) Set(s string) error {
	host, guest, ok := strings.Cut(s, ":")
	if !ok || !strings.HasPrefix(guest, "/") {
		return errors.New("want HOST:/GUEST/PATH")
	}
	*f = append(*f, vm.File{Path: guest, Source: host})
	return nil
}

func main() {
	os.Exit(run())
}

func run() int {
	var files fileFlags
	shell := flag.Bool("shell", false, "interactive shell on the serial console (exit it to power off)")
	prepare := flag.Bool("prepare", false, "only build (or find) the image and print where it is")
	fidolab := flag.Bool("fidolab", false, "put a static build of ./cmd/fidolab at /usr/bin/fidolab")
	verbose := flag.Bool("v", false, "keep the kernel's boot messages")
	timeout := flag.Duration("timeout", vm.DefaultTimeout, "bound on the run (a -shell run has none)")
	flag.Var(&files, "file", "HOST:GUEST file to add to the guest (repeatable)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: vmrun [-v] [-fidolab] [-file HOST:GUEST]... [-timeout D] SCRIPT.sh|-shell|-prepare [-- QEMU ARGS...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	img, err := vm.Prepare(ctx, vm.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		return 1
	}
	if *prepare {
		fmt.Printf("kernel    %s (%s, release %s)\ninitramfs %s\nprepared in %v (built: %v)\n",
			img.Kernel, img.Package, img.Release, img.Initramfs, img.BuildTime.Round(time.Millisecond), img.Built)
		return 0
	}
	args := flag.Args()
	var qemuArgs []string
	for i, a := range args {
		if a == "--" {
			qemuArgs = args[i+1:]
			args = args[:i]
			break
		}
	}
	cfg := vm.Config{Files: files, QEMUArgs: qemuArgs, Console: os.Stdout, Verbose: *verbose, Timeout: *timeout}
	switch {
	case *shell && len(args) == 0:
		cfg.Script = "setsid cttyhack sh -l; exit 0"
		cfg.Timeout = 24 * time.Hour
		cfg.Interactive = true
	case !*shell && len(args) == 1:
		b, err := os.ReadFile(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmrun:", err)
			return 1
		}
		cfg.Script = string(b)
	default:
		flag.Usage()
		return 2
	}
	if *fidolab {
		f, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
		if err != nil {
			fmt.Fprintln(os.Stderr, "vmrun:", err)
			return 1
		}
		cfg.Files = append(cfg.Files, f)
	}
	res, err := img.Run(ctx, cfg)
	fmt.Fprintf(os.Stderr, "vmrun: boot %v, total %v, exit %d\n", res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond), res.ExitCode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmrun:", err)
		return 1
	}
	return res.ExitCode
}
