package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ferry-io/ferry/examples/internal/demo"
	"github.com/ferry-io/ferry/internal/hooks"
)

// hookPath is the publish hook's endpoint on the app's server; the bids
// namespace's publish_hook names it (namespaces.json).
const hookPath = "/ferry/publish"

// maxHookBody bounds a hook request's body. A bid is a few dozen bytes;
// the node's frames are at most max_frame_bytes (64 KiB by default).
const maxHookBody = 1 << 20

// signatureAge is how far a request's signed timestamp may be from now:
// an older request is a replay.
const signatureAge = 5 * time.Minute

// publishHook answers the node's publish hook (docs/hooks.md) for a bid.
// Anyone can reach this server (it serves the pages too), so nothing is
// read from a request before its Ferry-Signature is verified; a request
// that is not the node's gets an HTTP error (the node would report it to
// its client as a bad answer, 502). The node's own requests always get
// 200 with a verdict: the data to publish, or a refusal with its reason.
func (a *auction) publishHook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHookBody+1))
	switch {
	case err != nil:
		http.Error(w, "read the body: "+err.Error(), http.StatusBadRequest)
		return
	case len(body) > maxHookBody:
		http.Error(w, fmt.Sprintf("body over %d bytes", maxHookBody), http.StatusRequestEntityTooLarge)
		return
	}
	if err := hooks.Verify(a.secret, r.Header.Get(hooks.HeaderSignature), body, a.now(), signatureAge); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if h := r.Header.Get(hooks.HeaderHook); h != "publish" {
		http.Error(w, fmt.Sprintf("%s %q: this endpoint answers the publish hook only", hooks.HeaderHook, h), http.StatusBadRequest)
		return
	}
	var req hooks.PublishRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "not a publish hook request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ans, changed := a.judge(&req)
	demo.WriteJSON(w, ans)
	if changed {
		// After the answer: the price follows the hook's verdict.
		a.poke()
	}
}

// judge decides a publish on the bids channel: an accepted bid is
// published as its verdict (the bidder from the connection, never from
// the client's data; the key; the sequence number the pages order the
// bid log by), a refused one is refused with the verdict's code and
// reason. changed says the standing changed (a new accepted bid). A
// retried publish (same key, same bidder) gets the same answer again and
// changes nothing.
func (a *auction) judge(req *hooks.PublishRequest) (ans hooks.PublishAnswer, changed bool) {
	if want := "bids:" + a.item; req.Channel != want {
		return refuse(http.StatusNotFound, fmt.Sprintf("no auction on %q: bids go to %q", req.Channel, want)), false
	}
	var o Offer
	if err := json.Unmarshal(req.Data, &o); err != nil {
		return refuse(codeBadBid, `a bid is {"amount": N} with N a whole number > 0`), false
	}
	o.Key = req.Key
	v, dup := a.rules.Decide(req.User, o)
	if !v.Accepted {
		return refuse(v.Code, v.Reason), false
	}
	data, err := json.Marshal(v)
	if err != nil { // not reached: a Verdict always encodes
		return refuse(http.StatusInternalServerError, err.Error()), false
	}
	return hooks.PublishAnswer{Data: data}, !dup
}

func refuse(code int, reason string) hooks.PublishAnswer {
	return hooks.PublishAnswer{Error: &hooks.Refusal{Code: code, Reason: reason}}
}
