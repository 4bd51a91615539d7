// Command probe writes, for each google.protobuf.Struct it reads, what
// protobuf-go's String() makes of it, single-spaced and double-spaced.
//
// run.sh builds it inside a copy of protobuf-go, because it sets the
// package-private detrand seed that decides the spacing; it is a
// measuring tool for tests/data/go_text_golden.json, never shipped.
//
// Input: JSON {"name": "base64 of a serialized Struct", ...} on stdin.
// Output: JSON {"name": {"text": ..., "double_spaced_length": N}, ...}.
package main

import (
	"encoding/base64"
	"encoding/json"
	"os"

	"google.golang.org/protobuf/internal/detrand"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

type result struct {
	Text               string `json:"text"`
	DoubleSpacedLength int    `json:"double_spaced_length"`
}

func main() {
	var cases map[string]string
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	texts := map[string]string{}
	for _, seed := range []uint64{0, 1} {
		detrand.SetSeedForProbe(seed)
		for name, encoded := range cases {
			data, err := base64.StdEncoding.DecodeString(encoded)
			if err != nil {
				panic(err)
			}
			details := &structpb.Struct{}
			if err := proto.Unmarshal(data, details); err != nil {
				panic(err)
			}
			texts[name+"/"+string(rune('0'+seed))] = details.String()
		}
	}
	out := map[string]result{}
	for name := range cases {
		out[name] = result{Text: texts[name+"/0"], DoubleSpacedLength: len(texts[name+"/1"])}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
