package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/sink"
)

func cmdDeadLetter(ctx context.Context, args []string, e *env) error {
	fs := flags("deadletter", e)
	path := configFlag(fs, e)
	name := fs.String("webhook", "", "only this webhook's dead letters (list: "+audit.InvalidToken+" for the invalid entries)")
	asJSON := fs.Bool("json", false, "list: JSON lines instead of a table")
	action, err := parseAction(fs, args)
	if err != nil {
		return err
	}
	cfg, err := load(*path)
	if err != nil {
		return err
	}
	if action == "redrive" && *name == audit.InvalidToken {
		return usageError{errors.New("invalid entries are not redriven: they are not audit entries")}
	}
	t, err := newTool(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer t.close()
	if action == "list" {
		return t.list(ctx, *name, *asJSON)
	}
	return t.redrive(ctx, *name)
}

// parseAction parses flags before and after the action, list or redrive.
func parseAction(fs *flag.FlagSet, args []string) (string, error) {
	if err := parse(fs, args); err != nil {
		return "", err
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != "list" && rest[0] != "redrive" {
		return "", usageError{errors.New("deadletter needs an action: list or redrive")}
	}
	if err := parse(fs, rest[1:]); err != nil {
		return "", err
	}
	if len(fs.Args()) > 0 {
		return "", usageError{fmt.Errorf("deadletter %s: unexpected argument %q", rest[0], fs.Args()[0])}
	}
	return rest[0], nil
}

// list prints the dead letters of webhook ("" for all).
func (t *natsTool) list(ctx context.Context, webhook string, asJSON bool) error {
	var out deadLetterPrinter = newDeadLetterTable(t.out)
	if asJSON {
		out = deadLetterJSON{json.NewEncoder(t.out)}
	}
	err := t.src.ListDeadLetters(ctx, webhook, out.print)
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	return nil
}

type deadLetterPrinter interface {
	print(*audit.StoredDeadLetter) error
	flush() error
}

// deadLetterLine is one dead letter of `deadletter list -json`. Attempts
// and lastStatus are null for an invalid entry, which was never attempted.
type deadLetterLine struct {
	Webhook    string    `json:"webhook"`
	Seq        uint64    `json:"seq"`
	StreamSeq  uint64    `json:"streamSeq"`
	Time       time.Time `json:"time"`
	Operation  string    `json:"operation"`
	ObjectType string    `json:"objectType"`
	ObjectID   string    `json:"objectId"`
	Attempts   *int      `json:"attempts"`
	LastStatus *string   `json:"lastStatus"`
	Reason     string    `json:"reason"`
}

func newDeadLetterLine(dl *audit.StoredDeadLetter) deadLetterLine {
	l := deadLetterLine{
		Webhook: dl.Webhook, Seq: dl.Seq, StreamSeq: dl.StreamSeq, Time: dl.Time.UTC(),
		Operation: dl.Entry.Operation, ObjectType: dl.Entry.ObjectType, ObjectID: dl.Entry.ObjectID, Reason: dl.Reason,
	}
	if dl.Webhook == "" {
		l.Webhook = audit.InvalidToken
		return l
	}
	l.Attempts, l.LastStatus = &dl.Attempts, &dl.LastStatus
	return l
}

type deadLetterJSON struct{ enc *json.Encoder }

func (j deadLetterJSON) print(dl *audit.StoredDeadLetter) error {
	return j.enc.Encode(newDeadLetterLine(dl))
}
func (j deadLetterJSON) flush() error { return nil }

// deadLetterTable prints aligned columns; the reason, last, is kept on one
// line.
type deadLetterTable struct{ tw *tabwriter.Writer }

func newDeadLetterTable(w io.Writer) deadLetterTable {
	t := deadLetterTable{tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	fmt.Fprintln(t.tw, "WEBHOOK\tSEQ\tTIME\tSTREAM SEQ\tOPERATION\tOBJECT TYPE\tOBJECT ID\tATTEMPTS\tLAST STATUS\tREASON")
	return t
}

func (t deadLetterTable) print(dl *audit.StoredDeadLetter) error {
	l := newDeadLetterLine(dl)
	attempts, status := "", ""
	if l.Attempts != nil {
		attempts, status = strconv.Itoa(*l.Attempts), *l.LastStatus
	}
	cells := []string{l.Webhook, strconv.FormatUint(l.Seq, 10), l.Time.Format(time.RFC3339), strconv.FormatUint(l.StreamSeq, 10),
		l.Operation, l.ObjectType, l.ObjectID, attempts, status, l.Reason}
	for i, c := range cells {
		cells[i] = oneLine(c)
	}
	_, err := fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
	return err
}

func (t deadLetterTable) flush() error { return t.tw.Flush() }

// oneLine keeps a cell on its line and in its column: white space and
// control characters (a receiver's multi-line answer) become one space.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == ' ' || r == 0x7f }), " ")
}

// redrive delivers the dead letters of webhook (every enabled one for "")
// again, one webhook after the other.
func (t *natsTool) redrive(ctx context.Context, webhook string) error {
	targets, err := t.redriveTargets(webhook)
	if err != nil {
		return err
	}
	counts, err := t.src.DeadLetterCounts(ctx)
	if err != nil {
		return err
	}
	if webhook == "" {
		t.noteLeftAlone(counts, targets)
	}
	var errs []error
	for _, wh := range targets {
		if counts[wh.Token()] == 0 {
			fmt.Fprintf(t.out, "%s: no dead letters\n", wh.Name)
			continue
		}
		if err := t.redriveOne(ctx, wh); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func (t *natsTool) redriveTargets(webhook string) ([]config.Webhook, error) {
	if webhook != "" {
		wh, err := enabledWebhook(t.cfg, webhook)
		return []config.Webhook{wh}, err
	}
	var out []config.Webhook
	for _, wh := range t.cfg.Webhooks {
		if wh.Enabled {
			out = append(out, wh)
		}
	}
	return out, nil
}

// noteLeftAlone says which dead letters a full redrive leaves in place: the
// invalid entries, and those of webhooks no longer enabled in the config.
func (t *natsTool) noteLeftAlone(counts map[string]uint64, targets []config.Webhook) {
	if n := counts[audit.InvalidToken]; n > 0 {
		fmt.Fprintf(t.out, "%d invalid entries are not redriven: they are not audit entries (see `deadletter list -webhook %s`)\n",
			n, audit.InvalidToken)
	}
	known := map[string]bool{audit.InvalidToken: true}
	for _, wh := range targets {
		known[wh.Token()] = true
	}
	var other []string
	for token, n := range counts {
		if !known[token] && n > 0 {
			other = append(other, fmt.Sprintf("%s (%d)", token, n))
		}
	}
	sort.Strings(other)
	if len(other) > 0 {
		fmt.Fprintf(t.out, "left in place, no enabled webhook of the config: %s\n", strings.Join(other, ", "))
	}
}

// redriveOne redrives one webhook's dead letters through its real sink and
// prints what became of them. Dead letters its filter now drops stay.
func (t *natsTool) redriveOne(ctx context.Context, wh config.Webhook) error {
	w, err := t.webhook(wh)
	if err != nil {
		return err
	}
	defer w.Close()
	rd, err := t.src.Redrive(ctx, wh.Name, sink.NewFilter(wh.Filter).Match, sink.MaxHeld(&wh))
	if err != nil {
		return fmt.Errorf("redrive %s: %w", wh.Name, err)
	}
	defer rd.Close()
	runErr := runFeed(ctx, w, rd, newProgress(t.err, wh.Name+": redriven"))
	o, st := w.Outcomes(), rd.Stats()
	fmt.Fprintf(t.out, "%s: delivered %d, dead-lettered again %d, removed %d, kept %d\n", wh.Name,
		o.Delivered, o.DeadLettered, st.Removed, st.Kept)
	errs := append([]error{runErr}, st.Errors...)
	if n := o.DeadLettered; n > 0 {
		errs = append(errs, fmt.Errorf("%d entries failed again and are stored as dead letters anew", n))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("redrive %s: %w", wh.Name, err)
	}
	return nil
}
