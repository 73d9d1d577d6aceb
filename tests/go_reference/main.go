// Command go_reference prints what Go's encoding/json writes for the publisher's record, as test vectors.
//
// The Python publisher must write the same bytes as the Go original's json.Marshal of its
// TemperatureReading. This program (standard library only) marshals a fixed, seeded set of
// floats, strings, times and whole readings, and prints them as one JSON document:
//
//	go run ./tests/go_reference > tests/go_reference/vectors.json
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"runtime"
	"time"
)

// TemperatureReading is the original publisher's record, field for field.
type TemperatureReading struct {
	DeviceID     string    `json:"device_id"`
	Temperature  float64   `json:"temperature"`
	Timestamp    time.Time `json:"timestamp"`
	GPUModel     string    `json:"gpu_model"`
	HostName     string    `json:"host_name"`
	PowerConsume float64   `json:"power_consume"`
	GPUUtil      float64   `json:"gpu_util"`
}

type floatVector struct {
	Bits string `json:"bits"`
	JSON string `json:"json"`
}

type stringVector struct {
	Base64 string `json:"base64"`
	JSON   string `json:"json"`
}

type timeVector struct {
	UnixNano int64  `json:"unix_ns"`
	JSON     string `json:"json"`
}

type readingVector struct {
	DeviceID     string `json:"device_id"`
	Temperature  string `json:"temperature_bits"`
	UnixNano     int64  `json:"unix_ns"`
	GPUModel     string `json:"gpu_model_base64"` // raw bytes: the model names include invalid UTF-8
	HostName     string `json:"host_name"`
	PowerConsume string `json:"power_consume_bits"`
	GPUUtil      string `json:"gpu_util_bits"`
	JSON         string `json:"json"`
}

func marshal(v any) string {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(out)
}

func bits(f float64) string { return fmt.Sprintf("%016x", math.Float64bits(f)) }

func floats(rng *rand.Rand) []float64 {
	values := []float64{
		0, math.Copysign(0, -1), 1, -1, 100, 0.1, 0.2, 1.0 / 3, 2.0 / 3, 81.37, 189.99999999999997, 190, 190.00000000000003,
		1e-6, math.Nextafter(1e-6, 0), math.Nextafter(1e-6, 1), -1e-6, 1e-7, 1.5e-7, 1e-5, 0.000123,
		1e20, 1e21, math.Nextafter(1e21, 0), math.Nextafter(1e21, math.Inf(1)), -1e21, 1e22, 1.5e300,
		1e15, 1e16, 1e17, 123456789012345678, 9007199254740993, 4503599627370496.5,
		5e-324, math.SmallestNonzeroFloat64 * 3, 2.2250738585072014e-308, math.MaxFloat64, -math.MaxFloat64,
		1e-100, 1e-10, 1.7e-8, 9.999999999999999e-7, 123e-9,
	}
	for i := 0; i < 400; i++ { // the publisher's ranges: °C, W, %
		values = append(values, rng.Float64()*400, rng.Float64()*100, 20+rng.Float64()*200)
	}
	for i := 0; i < 400; i++ { // every magnitude
		values = append(values, math.Pow(10, rng.Float64()*60-30)*(rng.Float64()+0.5))
	}
	for i := 0; i < 400; i++ { // any finite bit pattern
		f := math.Float64frombits(rng.Uint64())
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			values = append(values, f)
		}
	}
	for exp := -9; exp <= 25; exp++ { // both sides of every decimal power near the cut-offs
		p := math.Pow(10, float64(exp))
		values = append(values, p, math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)), 3*p, 7.25*p)
	}
	return values
}

func strings() [][]byte {
	return [][]byte{
		[]byte(""), []byte("gpu-0001"), []byte("NVIDIA H100 80GB HBM3"), []byte(`quote " backslash \ slash /`),
		[]byte("<script>&amp;</script>"), []byte("tab\tnewline\ncr\rbs\bff\f"), []byte("nul\x00 unit\x1f del\x7f"),
		[]byte("ünïcödé 温度 🔥"), []byte("line\u2028para\u2029end"), []byte("bidi\u202eevil zero\u200bwidth"),
		[]byte("invalid \xff\xfe bytes"), []byte("truncated \xe2\x82"), []byte("overlong \xc0\xaf"),
		[]byte("surrogate \xed\xa0\x80"), []byte("too big \xf4\x90\x80\x80"), []byte("c1 \xc2\x85 nel"),
		[]byte("percent 100% {} [] , :"), []byte("\x01\x02\x03\x04\x05\x06\x07\x0b\x0e\x1b"),
	}
}

func times(rng *rand.Rand) []int64 {
	base := time.Date(2026, 11, 28, 10, 11, 12, 0, time.UTC).UnixNano()
	values := []int64{0, base, base + 100_000_000, base + 120_000_000, base + 123_456_789, base + 123_456_700,
		base + 1, base + 10, base + 999_999_999, base + 500_000, time.Date(1999, 12, 31, 23, 59, 59, 5, time.UTC).UnixNano()}
	for i := 0; i < 100; i++ {
		values = append(values, base+rng.Int63n(86_400_000_000_000))
	}
	return values
}

func main() {
	rng := rand.New(rand.NewSource(20261128))
	doc := struct {
		Go       string          `json:"go"`
		Floats   []floatVector   `json:"floats"`
		Strings  []stringVector  `json:"strings"`
		Times    []timeVector    `json:"times"`
		Readings []readingVector `json:"readings"`
	}{Go: runtime.Version()}
	for _, f := range floats(rng) {
		doc.Floats = append(doc.Floats, floatVector{bits(f), marshal(f)})
	}
	for _, s := range strings() {
		doc.Strings = append(doc.Strings, stringVector{base64.StdEncoding.EncodeToString(s), marshal(string(s))})
	}
	for _, ns := range times(rng) {
		doc.Times = append(doc.Times, timeVector{ns, marshal(time.Unix(0, ns).UTC())})
	}
	names := strings()
	for i := 0; i < 40; i++ {
		r := TemperatureReading{
			DeviceID:     fmt.Sprintf("gpu-%04d", i),
			Temperature:  30 + rng.Float64()*180,
			Timestamp:    time.Unix(0, times(rng)[i%11]).UTC(),
			GPUModel:     string(names[i%len(names)]),
			HostName:     fmt.Sprintf("gpu-node-%02d", i/8+1),
			PowerConsume: rng.Float64() * 400,
			GPUUtil:      rng.Float64() * 100,
		}
		if i%10 == 9 { // integral values, as a real GPU reports them
			r.Temperature, r.PowerConsume, r.GPUUtil = 71, 250, 0
		}
		doc.Readings = append(doc.Readings, readingVector{
			DeviceID: r.DeviceID, Temperature: bits(r.Temperature), UnixNano: r.Timestamp.UnixNano(),
			GPUModel: base64.StdEncoding.EncodeToString([]byte(r.GPUModel)), HostName: r.HostName, PowerConsume: bits(r.PowerConsume), GPUUtil: bits(r.GPUUtil),
			JSON: marshal(r),
		})
	}
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", " ")
	if err := encoder.Encode(doc); err != nil {
		panic(err)
	}
}
