// Command loadgen is an open-loop HTTP load generator for the scoring API.
//
// Requests leave at a fixed arrival rate whatever the server does (open loop): a request's
// latency is measured from the moment it was due to leave, so a server that falls behind
// shows its queueing in the percentiles instead of slowing the generator down (no
// coordinated omission). Bodies come from a file, one request body a line, sent in order and
// each once; the run ends when the duration is over or the file runs out.
//
// With -batch N, each request carries N lines joined as {"transactions": [...]} and goes to
// the batch route; -rate 0 sends as fast as -conns connections allow (closed loop).
//
// It prints one JSON object: requests sent and answered, errors by status, the achieved rate,
// latency percentiles in milliseconds, and the generator's own CPU time (user + system) as a
// share of one core, since on a small machine the generator competes with the server.
//
//	go run . -url http://127.0.0.1:8080/v1/score -token T -bodies txns.jsonl -rate 1000 -duration 30s
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	due     time.Time
	latency time.Duration
	status  int
	err     string
}

type summary struct {
	URL          string         `json:"url"`
	Rate         float64        `json:"target_rate"`
	Batch        int            `json:"batch"`
	Conns        int            `json:"conns"`
	Sent         int            `json:"sent"`
	OK           int            `json:"ok"`
	Errors       map[string]int `json:"errors"`
	Late         int            `json:"late_starts"`
	WallS        float64        `json:"wall_s"`
	AchievedRPS  float64        `json:"achieved_rps"`
	AchievedTPS  float64        `json:"achieved_txn_s"`
	P50          float64        `json:"p50_ms"`
	P95          float64        `json:"p95_ms"`
	P99          float64        `json:"p99_ms"`
	Max          float64        `json:"max_ms"`
	CPUShare     float64        `json:"generator_cpu"`
	Exhausted    bool           `json:"exhausted"`
	WarmupIgnore int            `json:"warmup_ignored"`
}

func readBodies(path string, batch int) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var lines [][]byte
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) > 0 {
			lines = append(lines, append([]byte(nil), line...))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if batch <= 1 {
		return lines, nil
	}
	var bodies [][]byte
	for i := 0; i < len(lines); i += batch {
		end := i + batch
		if end > len(lines) {
			end = len(lines)
		}
		var b bytes.Buffer
		b.WriteString(`{"transactions":[`)
		b.Write(bytes.Join(lines[i:end], []byte(",")))
		b.WriteString("]}")
		bodies = append(bodies, b.Bytes())
	}
	return bodies, nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	if i > len(sorted)-1 {
		i = len(sorted) - 1
	}
	if i < 0 {
		i = 0
	}
	return float64(sorted[i]) / 1e6
}

func main() {
	url := flag.String("url", "", "the route to post to")
	token := flag.String("token", "", "bearer token")
	path := flag.String("bodies", "", "file of request bodies (one transaction JSON a line)")
	rate := flag.Float64("rate", 1000, "requests per second (0: as fast as the connections go)")
	duration := flag.Duration("duration", 30*time.Second, "how long to send")
	warmup := flag.Duration("warmup", 0, "leave out requests due in this first part of the run")
	conns := flag.Int("conns", 256, "most requests in flight (keep-alive connections)")
	batch := flag.Int("batch", 1, "transactions per request (joined as {\"transactions\": [...]})")
	timeout := flag.Duration("timeout", 10*time.Second, "per request")
	flag.Parse()
	if *url == "" || *path == "" {
		fmt.Fprintln(os.Stderr, "loadgen: -url and -bodies are required")
		os.Exit(2)
	}
	bodies, err := readBodies(*path, *batch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	transport := &http.Transport{
		MaxIdleConns:        *conns,
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second, // below the server's keep-alive (75 s)
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	client := &http.Client{Transport: transport, Timeout: *timeout}
	auth := "Bearer " + *token

	type job struct {
		body []byte
		due  time.Time
	}
	jobs := make(chan job, *conns)
	results := make(chan result, 4096)
	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				req, _ := http.NewRequest(http.MethodPost, *url, bytes.NewReader(j.body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", auth)
				resp, err := client.Do(req)
				r := result{due: j.due}
				if err != nil {
					r.err = "transport"
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					r.status = resp.StatusCode
				}
				r.latency = time.Since(j.due)
				results <- r
			}
		}()
	}
	var collected []result
	done := make(chan struct{})
	go func() {
		for r := range results {
			collected = append(collected, r)
		}
		close(done)
	}()

	cpu0 := cpuSeconds()
	start := time.Now()
	end := start.Add(*duration)
	var late atomic.Int64
	sent := 0
	exhausted := false
	for {
		var due time.Time
		if *rate > 0 {
			due = start.Add(time.Duration(float64(sent) / *rate * float64(time.Second)))
			if due.After(end) {
				break
			}
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
		} else {
			due = time.Now()
			if due.After(end) {
				break
			}
		}
		if sent >= len(bodies) {
			exhausted = true
			break
		}
		select {
		case jobs <- job{bodies[sent], due}:
		default: // every connection busy: the request waits, and its wait counts
			late.Add(1)
			jobs <- job{bodies[sent], due}
		}
		sent++
	}
	close(jobs)
	wg.Wait()
	wall := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	close(results)
	<-done

	s := summary{URL: *url, Rate: *rate, Batch: *batch, Conns: *conns, Sent: sent,
		Errors: map[string]int{}, Late: int(late.Load()), WallS: wall, Exhausted: exhausted}
	var lat []time.Duration
	cut := start.Add(*warmup)
	for _, r := range collected {
		switch {
		case r.err != "":
			s.Errors[r.err]++
		case r.status != http.StatusOK:
			s.Errors[fmt.Sprint(r.status)]++
		default:
			s.OK++
		}
		if r.due.Before(cut) {
			s.WarmupIgnore++
			continue
		}
		if r.err == "" {
			lat = append(lat, r.latency)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	s.AchievedRPS = float64(s.OK) / wall
	per := *batch
	if per < 1 {
		per = 1
	}
	s.AchievedTPS = s.AchievedRPS * float64(per)
	s.P50, s.P95, s.P99 = percentile(lat, 0.50), percentile(lat, 0.95), percentile(lat, 0.99)
	if len(lat) > 0 {
		s.Max = float64(lat[len(lat)-1]) / 1e6
	}
	s.CPUShare = cpu / wall
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
}
