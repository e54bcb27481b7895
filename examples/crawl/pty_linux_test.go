//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// openPTY opens a pseudo-terminal: its master, which reads what is written
// to the slave, and its slave, a terminal for a program's stdout.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := master.Fd()
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("getting the pty's number: %w", errno)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// TestTerminal runs the demo with its stdout a pseudo-terminal: it must
// see a terminal and rewrite its progress line in place with carriage
// returns, then end the line and print the summary.
func TestTerminal(t *testing.T) {
	t.Parallel()
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer master.Close()
	cmd := demo(t)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = slave, &stderr
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatal(err)
	}
	// Once the demo exits, no one has the slave open, and reading the
	// master ends with EIO.
	slave.Close()
	var out bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(&out, master)
		read <- err
	}()
	werr := cmd.Wait()
	if err := <-read; err != nil && !errors.Is(err, syscall.EIO) {
		t.Errorf("reading the terminal: %v", err)
	}
	if werr != nil {
		t.Fatalf("the demo failed: %v\n%s\n%q", werr, stderr.Bytes(), out.Bytes())
	}

	// The terminal turns each \n into \r\n; a lone \r is an update.
	s := strings.ReplaceAll(out.String(), "\r\n", "\n")
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want the progress line, then two lines of summary; got:\n%q", s)
	}
	updates := strings.Split(strings.TrimPrefix(lines[0], "\r"), "\r")
	total := 1 + small.sections*(1+small.pages) + 1
	last := strings.TrimRight(updates[len(updates)-1], " ")
	if !strings.HasPrefix(lines[0], "\r") || len(updates) < 2 || !strings.Contains(last, fmt.Sprintf("] %d/%d done", total, total)) {
		t.Errorf("want the progress line rewritten at least twice after carriage returns, all %d tasks done at the end; got %q", total, lines[0])
	}
	for _, u := range updates {
		if !regexp.MustCompile(`^\[ *[0-9]+\.[0-9]s\] [0-9]+/[0-9]+ done[a-z0-9,;: ]*$`).MatchString(u) {
			t.Errorf("update %q is not a progress line", u)
		}
	}
	checkSummary(t, lines[1:])
}
