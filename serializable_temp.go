package dag

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// checkSerializable reports whether v, the value of key in task's output
// (or in Options.Context when task is ""), can be gob-encoded.
func checkSerializable(task, key string, v any) error {
	if err := gob.NewEncoder(new(bytes.Buffer)).Encode(&v); err != nil {
		who := "Options.Context"
		if task != "" {
			who = "task " + quote(task)
		}
		return &wrapError{msg: fmt.Sprintf("dag: %s: key %q holds a %T, which cannot be saved in a checkpoint (register it with gob.Register?): %v", who, key, v, err), err: ErrNotSerializable}
	}
	return nil
}
