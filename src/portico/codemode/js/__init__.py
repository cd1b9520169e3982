"""Code Mode's JavaScript engine: the model's code runs in V8 (mini-racer), only ever in worker processes.

Where it sits: `portico.codemode` builds a `Program` (code, data, host functions) and calls `JsEngine.run`; this
package knows nothing of MCP, the catalog or the pipeline, and imports only `portico.codemode.engine` and
`portico.errors`. The gateway process never loads V8: an out-of-memory abort, a runaway loop or a V8 bug in a
run takes down one worker, never the gateway.

    gateway process                                   worker process (worker.py, one per pool slot)
    JsEngine.run ─ WorkerPool.acquire ─ socket ─────▶ fresh V8 isolate per run, runtime.js installed
      ◀ call {name, args}   host function awaited here   codemode.<name>(args) → Promise
      ▶ reply {JSON | ToolError message}               console.* → log messages (capped in the isolate)
      ◀ done {value | kind, message, line}             exits after any run that did not complete normally
      wall deadline, CPU watchdog → SIGKILL the worker's process group; a replacement starts in the background

Decisions:

* **Process per worker, isolate per run.** A worker serves up to `max_runs_per_worker` runs (default 100) one
  at a time, each in a fresh V8 isolate created while the worker was idle, and is killed after any run that did
  not complete normally (an error thrown by the code included). Separate isolates share no JavaScript state, so
  runs of different callers cannot see each other; what a process per run would add is a wiped address space
  between callers (it matters only after a V8 memory-safety bug, which confinement already fences in), at
  ~130 ms of CPU and ~70 ms of latency per run (interpreter, V8 start, first isolate) instead of ~4 ms and a
  p50 of ~4 ms: `max_runs_per_worker=1` buys it where it is worth that (see bench/codemode_engines.py).
* **Locked down before V8 loads** (`worker.limit_process`): empty environment (and `python -I`), only the socket
  inherited, stdin/stdout on /dev/null, an empty read-only working directory, own process group and session,
  killed with the gateway (PR_SET_PDEATHSIG), no new privileges, no core dumps, no file writes
  (RLIMIT_FSIZE=0), 64 descriptors, RLIMIT_DATA as the memory ceiling (V8 reserves ~1.4 TB of address space
  for its sandbox, so RLIMIT_AS cannot be used; RLIMIT_DATA counts only writable private memory, which is
  what ArrayBuffers and the heap consume). Per run the worker lowers RLIMIT_DATA to its current use + 2 *
  `memory_bytes` + slack, and RLIMIT_CPU (a backstop: SIGXCPU) to its CPU so far + `cpu_s`.
* **Confined once V8 is up** (`worker.confine`, before the first run): Landlock with an empty ruleset (no file
  system at all, no TCP, no abstract Unix sockets, no signals to processes outside the worker) and a seccomp
  filter (no new sockets, exec, fork, ptrace, io_uring, bpf, mounts, namespaces, keys; clone only for threads).
  A kernel without them runs the worker without (logged once); tests prove both on this kernel.
* **V8 flags** `--jitless` (no JIT compiler, no WebAssembly: the largest part of V8's attack surface, at ~3x
  slower compute, which glue code does not notice) and `--single-threaded`. The isolate's heap limit is
  `memory_bytes` (a clean MEMORY error when reached); beyond the heap, RLIMIT_DATA fails the allocation
  (ArrayBuffers) or V8 aborts the worker, which the gateway reports as MEMORY from the worker's stderr.
* **Limits, in the gateway.** The wall deadline covers the whole run (waiting for a worker and for host
  functions included); the CPU watchdog reads /proc/<pid>/stat; the host-call count is checked before a call
  starts (call `max_calls + 1` ends the run with LIMIT); console output is capped in the isolate and cut exactly
  at `max_log_bytes` in the gateway (`logs_truncated`, not an error); the result is `JSON.stringify`'d in the
  isolate and larger than `max_result_bytes` is a LIMIT error.
* **What the code sees.** `codemode.<name>(args)` for every `Program.functions` name: async, one JSON object
  in (none means `{}`), JSON out; a `ToolError` arrives as an `Error` named `ToolError` that the code may catch
  (uncaught it ends the run as TOOL). Every `Program.data` key is a read-only, deep-frozen global (`tools`,
  `servers`, ...), the same convention as the Python engine's inputs. `console.log/info/warn/error/debug`
  are captured. `setTimeout` (mini-racer's, on `Atomics.waitAsync`) is kept: a timer cannot outlive the wall
  deadline. `Date.now()` is kept at V8's millisecond resolution; there is no `performance`, no threads and no
  SharedArrayBuffer-based clock to sharpen it. There is no `fetch`, `XMLHttpRequest`, `WebSocket`, `require`,
  `process`, `Deno` or `Bun`; `import()` rejects ("Not supported"); none of this is removed, V8 alone has none.
* **Code normalisation** (runtime.js, with V8 as the parser: constructing an `AsyncFunction` parses its body
  and runs nothing): Markdown fences are stripped (here); `export default` is dropped; code that is one
  expression is its value, and a function value (`async () => {...}`) is called; otherwise the code is an async
  function body whose `return` is the result, and when its last top-level statement is an expression, that
  expression's value is. No text is inserted before the model's first line, so V8's line numbers are the
  model's.
"""

from portico.codemode.js.engine import JsEngine

__all__ = ["JsEngine"]
