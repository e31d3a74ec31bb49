// Command gobaseline is a trickle publisher on Go's net/http, used as the baseline of the
// transport benchmark (tests/bench/trickle_bench.py). It publishes the way go-livepeer's
// publisher does (PROTOCOL.md §1.7): for each seq one POST whose body is streamed through an
// io.Pipe (chunked transfer encoding), with the POST for the next seq opened before the current
// segment's bytes are written, Content-Type video/MP2T, HTTP/1.1 only. Like go-livepeer's
// segment Write, a segment is done when its POST was answered, and by default the next segment
// starts only then (-max-inflight 1); the preconnected POST for it is already open by that time.
//
// Segment payloads are the same bytes our publisher sends for (seed, seq), so subscribers can
// check them against our digests.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// ---- payload ---------------------------------------------------------------------------------

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// fillPattern writes the bytes at [offset, offset+len(out)) of the stream keyed by seed:
// little-endian splitmix64(splitmix64(seed) ^ block) for each 8-byte block.
func fillPattern(seed, offset uint64, out []byte) {
	key := splitmix64(seed)
	var word [8]byte
	for i := 0; i < len(out); {
		pos := offset + uint64(i)
		within := int(pos % 8)
		if within == 0 && len(out)-i >= 8 {
			binary.LittleEndian.PutUint64(out[i:], splitmix64(key^(pos/8)))
			i += 8
			continue
		}
		binary.LittleEndian.PutUint64(word[:], splitmix64(key^(pos/8)))
		i += copy(out[i:], word[within:])
	}
}

func segmentSeed(runSeed uint64, seq int64) uint64 { return (runSeed << 32) ^ uint64(seq) }

// ---- publisher -------------------------------------------------------------------------------

type result struct {
	status int
	closed bool // Lp-Trickle-Closed: the channel has ended
	err    error
}

// fatal reports whether publishing must stop: the channel is gone (404) or closed.
func (r result) fatal() bool { return r.status == http.StatusNotFound || r.closed }

// post is one open POST: its body is fed through pw; done receives the outcome once.
type post struct {
	seq    int64
	pw     *io.PipeWriter
	cancel context.CancelFunc
	done   chan result
}

type publisher struct {
	client *http.Client
	url    string
}

func newPublisher(url string) *publisher {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // no h2
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},                  // self-signed O certs
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}
	return &publisher{client: &http.Client{Transport: tr}, url: strings.TrimRight(url, "/")}
}

// open starts the POST for seq with an empty streaming body; bytes follow through pw.
func (p *publisher) open(seq int64) *post {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	po := &post{seq: seq, pw: pw, cancel: cancel, done: make(chan result, 1)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/%d", p.url, seq), pr)
	if err != nil {
		po.done <- result{err: err}
		return po
	}
	req.ContentLength = -1 // unknown length: chunked
	req.Header.Set("Content-Type", "video/MP2T")
	go func() {
		resp, err := p.client.Do(req)
		if err != nil {
			pr.CloseWithError(err) // unblock a writer still feeding this body
			po.done <- result{err: err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		pr.CloseWithError(io.ErrClosedPipe)
		po.done <- result{status: resp.StatusCode, closed: resp.Header.Get("Lp-Trickle-Closed") != ""}
	}()
	return po
}

func (p *publisher) deleteChannel() error {
	req, err := http.NewRequest(http.MethodDelete, p.url, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE %s: status %d", p.url, resp.StatusCode)
	}
	return nil
}

// ---- main ------------------------------------------------------------------------------------

type rusage struct {
	cpuS  float64
	rssKB int64
}

func getRusage() rusage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return rusage{cpuS: tv(ru.Utime) + tv(ru.Stime), rssKB: int64(ru.Maxrss)}
}

func main() {
	url := flag.String("url", "", "channel URL, e.g. http://127.0.0.1:PORT/ai/trickle/NAME")
	segments := flag.Int("segments", 10, "segments to publish")
	size := flag.Int("size", 65536, "bytes per segment")
	chunk := flag.Int("chunk", 16384, "bytes per write")
	startSeq := flag.Int64("start-seq", 0, "first seq")
	seed := flag.Uint64("seed", 1, "payload seed (same bytes as naap-loadtest trickle publish)")
	digests := flag.String("digests", "", "write 'seq bytes sha256' per completed segment here")
	del := flag.Bool("delete", false, "DELETE the channel at the end")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after this long")
	maxInflight := flag.Int("max-inflight", 1,
		"segments in flight at once: a segment starts once fewer are unanswered (1 = go-livepeer's blocking Write)")
	flag.Parse()
	if *url == "" || *segments < 1 || *size < 0 || *chunk < 1 || *maxInflight < 1 {
		fmt.Fprintln(os.Stderr, "gobaseline: -url is required; -segments, -chunk, -max-inflight >= 1")
		os.Exit(2)
	}
	time.AfterFunc(*timeout, func() {
		fmt.Fprintln(os.Stderr, "gobaseline: timed out")
		os.Exit(1)
	})

	var digestFile *os.File
	if *digests != "" {
		f, err := os.Create(*digests)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gobaseline:", err)
			os.Exit(2)
		}
		defer f.Close()
		digestFile = f
	}

	ru0 := getRusage()
	t0 := time.Now()
	pub := newPublisher(*url)
	buf := make([]byte, *chunk)
	type sent struct {
		po    *post
		bytes int
		sha   string
		ok    bool
		res   result
	}
	var all []*sent
	answered := 0 // all[:answered] have their result
	stop := false // a POST was answered 404 or Lp-Trickle-Closed
	await := func(upTo int) {
		for ; answered < upTo; answered++ {
			all[answered].res = <-all[answered].po.done
			stop = stop || all[answered].res.fatal()
		}
	}
	cur := pub.open(*startSeq)
	for i := 0; i < *segments; i++ {
		await(len(all) - *maxInflight + 1)
		if stop {
			break
		}
		next := pub.open(cur.seq + 1) // preconnect before the current segment's first byte
		h := sha256.New()
		key := segmentSeed(*seed, cur.seq)
		written, ok := 0, true
		for written < *size {
			n := *chunk
			if *size-written < n {
				n = *size - written
			}
			fillPattern(key, uint64(written), buf[:n])
			h.Write(buf[:n])
			if _, err := cur.pw.Write(buf[:n]); err != nil {
				ok = false
				break
			}
			written += n
		}
		cur.pw.Close()
		all = append(all, &sent{po: cur, bytes: written, sha: hex.EncodeToString(h.Sum(nil)), ok: ok})
		cur = next
	}
	await(len(all))
	completed, bytesOK, reported := 0, 0, 0
	for _, s := range all {
		r := s.res
		if s.ok && r.err == nil && r.status == http.StatusOK {
			completed++
			bytesOK += s.bytes
			if digestFile != nil {
				fmt.Fprintf(digestFile, "%d %d %s\n", s.po.seq, s.bytes, s.sha)
			}
		} else if reported++; reported <= 5 {
			fmt.Fprintf(os.Stderr, "gobaseline: seq %d failed: status=%d closed=%v err=%v\n",
				s.po.seq, r.status, r.closed, r.err)
		}
	}
	// The idle preconnected POST is abandoned, not ended: an ended empty POST would be a segment.
	cur.cancel()
	cur.pw.CloseWithError(context.Canceled)
	<-cur.done
	failedDelete := false
	if *del {
		if err := pub.deleteChannel(); err != nil {
			fmt.Fprintln(os.Stderr, "gobaseline:", err)
			failedDelete = true
		}
	}
	wall := time.Since(t0).Seconds()
	ru := getRusage()
	cpu := ru.cpuS - ru0.cpuS
	mb := float64(bytesOK) / 1e6
	fmt.Printf("summary segments=%d completed=%d bytes=%d wall_s=%.3f cpu_s=%.3f mb_per_s=%.1f "+
		"cpu_s_per_mb=%.5f max_rss_kib=%d\n", *segments, completed, bytesOK, wall, cpu,
		mb/atLeast(wall, 1e-9), cpu/atLeast(mb, 1e-9), ru.rssKB)
	if completed != *segments || failedDelete {
		os.Exit(1)
	}
}

// atLeast returns v, or floor when v is smaller (the builtin max needs Go 1.21; Debian 12 ships
// Go 1.19).
func atLeast(v, floor float64) float64 {
	if v < floor {
		return floor
	}
	return v
}
