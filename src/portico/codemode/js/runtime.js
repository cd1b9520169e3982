// Code Mode's JavaScript runtime: evaluated once in every fresh V8 isolate of a worker, before any of the model's
// code exists there. It evaluates to `setup(hostCall, hostLog, hostDone, configJson)`, which the worker calls when
// a run arrives; `setup` installs `codemode`, `console` and the data globals, normalises the model's code and
// returns the script the worker then compiles (so V8 reports syntax errors with the model's own line numbers).
//
// Everything the runtime needs is captured here, before the model's code can replace a built-in; the three host
// functions live only in this closure. Nothing in this file is a security boundary (the worker process is): it
// only keeps a run's bookkeeping away from well-behaved code and reports outcomes faithfully.
(() => {
  'use strict';
  const G = globalThis;
  const jsonStringify = JSON.stringify;
  const jsonParse = JSON.parse;
  const AsyncFunction = (async function () {}).constructor;
  const defineProperty = Object.defineProperty;
  const freeze = Object.freeze;
  const isFrozen = Object.isFrozen;
  const create = Object.create;
  const keys = Object.keys;
  const values = Object.values;
  const isArray = Array.isArray;
  const StringOf = String;
  const ErrorBase = Error;
  const TypeErrorOf = TypeError;
  const RangeErrorOf = RangeError;
  const apply = Reflect.apply;
  const weakSetAdd = WeakSet.prototype.add;
  const weakSetHas = WeakSet.prototype.has;
  const regexpExec = RegExp.prototype.exec;
  const strSlice = String.prototype.slice;
  const strTrim = String.prototype.trim;
  const strTrimEnd = String.prototype.trimEnd;
  const strEndsWith = String.prototype.endsWith;
  const arrayJoin = Array.prototype.join;
  const arrayMap = Array.prototype.map;

  const CONTINUATION = /^\s*[([`+\-*/%.,?:=<>&|^]/;
  const SCRIPT_LINE = /code\.js:(\d+):\d+/;
  const MAX_SPLIT_TRIES = 400;
  const BUFFER_REFUSED = 'Array buffer allocation failed';
  const LOG_BATCH_UNITS = 8192;
  const settled = Promise.resolve();
  const promiseThen = Promise.prototype.then;

  const toolErrors = new WeakSet();
  class ToolError extends ErrorBase {
    constructor(message) {
      super(message);
      this.name = 'ToolError';
    }
  }

  const call = (fn, self, ...args) => apply(fn, self, args);

  // -- normalisation: which form did the model write? V8 itself is the parser: constructing an AsyncFunction parses
  // its body as a function body and runs nothing.
  const parses = (body) => {
    try {
      new AsyncFunction(body);
      return true;
    } catch {
      return false;
    }
  };
  const isExpression = (text) => parses('return (\n' + text + '\n)');
  // Whitespace and comments only: an empty array literal, but not an expression.
  const isTrivia = (text) => parses('return [\n' + text + '\n]') && !isExpression(text);

  // The last top-level statement, if it is an expression statement: {head, expr, tail}. Candidate statement starts
  // are line starts and positions after `;`, tried from the end; a candidate is a statement boundary when the code
  // before it and the code after it both parse as function bodies on their own.
  const splitLastExpression = (code) => {
    const starts = [];
    for (let i = 0; i < code.length; i++) {
      const c = code[i];
      if (c === '\n' || c === ';') starts.push(i + 1);
    }
    let end = code.length;
    let tries = 0;
    for (let n = starts.length; n >= 0; n--) {
      const k = n === 0 ? 0 : starts[n - 1];
      if (k >= end) continue;
      const rest = call(strSlice, code, k, end);
      if (call(strTrim, rest) === '') continue;
      if (++tries > MAX_SPLIT_TRIES) return null;
      if (!parses(rest)) continue; // inside the last statement
      const head = call(strSlice, code, 0, k);
      if (!parses(head)) continue; // inside a block or a multi-line statement
      let expr = call(strTrimEnd, rest);
      if (call(strEndsWith, expr, ';')) expr = call(strSlice, expr, 0, -1);
      if (!isExpression(expr)) {
        if (!isTrivia(rest)) return null; // the last statement is a declaration, a loop, a return...
        end = k; // a trailing comment: look before it
        continue;
      }
      // `a\n(b)` is one statement (a call), not two: a line starting with an operator continues the previous one.
      if (k > 0 && call(regexpExec, CONTINUATION, expr) && !call(regexpExec, /;\s*$/, head)) continue;
      return { head, expr, tail: call(strSlice, code, end) };
    }
    return null;
  };

  const RUN = '__portico_run';
  const normalise = (code) => {
    const source = call(strSlice, code, 0).replace(/^(\s*)export\s+default\s+/, '$1');
    const tag = '\n//# sourceURL=code.js\n';
    if (isExpression(source)) return RUN + '(async () => (' + source + '\n))' + tag;
    if (parses(source)) {
      const split = splitLastExpression(source);
      if (split !== null) {
        return RUN + '(async () => {' + split.head + 'return (' + split.expr + '\n);' + split.tail + '\n})' + tag;
      }
    }
    // A plain function body (or code that does not parse: compiling it reports the syntax error and its line).
    return RUN + '(async () => {' + source + '\n})' + tag;
  };

  // -- values crossing the boundary
  const deepFreeze = (value) => {
    if (value !== null && typeof value === 'object' && !isFrozen(value)) {
      freeze(value);
      const items = values(value);
      for (let i = 0; i < items.length; i++) deepFreeze(items[i]);
    }
    return value;
  };

  const describe = (value) => {
    try {
      if (typeof value === 'string') return value;
      if (value instanceof ErrorBase) return StringOf(value.name) + ': ' + StringOf(value.message);
      const text = jsonStringify(value);
      return text === undefined ? StringOf(value) : text;
    } catch {
      try {
        return StringOf(value);
      } catch {
        return '[unprintable]';
      }
    }
  };

  const lineOf = (error) => {
    try {
      const stack = error !== null && typeof error === 'object' ? error.stack : undefined;
      if (typeof stack !== 'string') return null;
      const match = call(regexpExec, SCRIPT_LINE, stack);
      return match === null ? null : +match[1];
    } catch {
      return null;
    }
  };

  const failure = (error) => {
    const isTool = error !== null && typeof error === 'object' && call(weakSetHas, toolErrors, error);
    let message;
    if (isTool) message = 'ToolError: ' + StringOf(error.message);
    else if (error instanceof ErrorBase) message = describe(error);
    else message = 'Uncaught ' + describe(error);
    // An ArrayBuffer the process's memory ceiling refused is the memory limit, not a bug in the code.
    const memory = !isTool && error instanceof RangeErrorOf && message === 'RangeError: ' + BUFFER_REFUSED;
    return { kind: isTool ? 'tool' : memory ? 'memory' : 'runtime', message, line: lineOf(error) };
  };

  // -- setup, called once per run by the worker
  return (hostCall, hostLog, hostDone, configJson) => {
    const config = jsonParse(configJson);
    const maxLogUnits = config.max_log_bytes;
    const maxResultUnits = config.max_result_bytes;
    let finished = false;
    const finish = (payload) => {
      if (finished) return;
      finished = true;
      flush();
      hostDone(payload);
    };
    const fail = (outcome) => finish('0' + jsonStringify(outcome));

    // codemode.<name>(args): one JSON object in, one JSON value out, a host ToolError thrown as a catchable Error.
    const codemode = create(null);
    const makeTool = (name) =>
      ({
        [name]: async function (args) {
          if (arguments.length > 1) throw new TypeErrorOf('codemode.' + name + ' takes one object argument');
          if (args === undefined) args = {};
          if (args === null || typeof args !== 'object' || isArray(args)) {
            throw new TypeErrorOf('codemode.' + name + ' takes one object argument');
          }
          const text = jsonStringify(args);
          flush();
          const reply = await hostCall(name, text);
          if (reply[0] === '1') return jsonParse(call(strSlice, reply, 1));
          const error = new ToolError(call(strSlice, reply, 1));
          call(weakSetAdd, toolErrors, error);
          throw error;
        },
      })[name];
    const names = config.functions;
    for (let i = 0; i < names.length; i++) {
      defineProperty(codemode, names[i], { value: makeTool(names[i]), enumerable: true });
    }
    defineProperty(G, 'codemode', { value: freeze(codemode), enumerable: true });

    // console.*: captured up to max_log_bytes (UTF-16 units here, bytes on the host, which cuts exactly); the
    // line that crosses the cap is sent cut short, so the host sees more than the cap and marks the logs truncated.
    // Lines are batched and sent when 8 KiB are pending, before a host call, before the outcome, and when the
    // current synchronous stretch of code ends (a microtask), so a flood costs few messages.
    let logUnits = 0;
    let pending = '';
    let flushQueued = false;
    const flush = () => {
      flushQueued = false;
      if (pending === '') return;
      const text = pending;
      pending = '';
      hostLog(text);
    };
    const write = (args) => {
      if (logUnits > maxLogUnits) return;
      let line = call(arrayJoin, call(arrayMap, args, describe), ' ') + '\n';
      const room = maxLogUnits + 1 - logUnits;
      if (line.length > room) line = call(strSlice, line, 0, room);
      logUnits += line.length;
      pending += line;
      if (pending.length >= LOG_BATCH_UNITS) flush();
      else if (!flushQueued) {
        flushQueued = true;
        call(promiseThen, settled, flush);
      }
    };
    const consoleObject = create(null);
    const levels = ['log', 'info', 'warn', 'error', 'debug', 'trace'];
    for (let i = 0; i < levels.length; i++) {
      defineProperty(consoleObject, levels[i], { value: (...args) => write(args), enumerable: true });
    }
    defineProperty(G, 'console', { value: freeze(consoleObject), enumerable: false, writable: true, configurable: true });

    // Program.data: each key a read-only global (deep-frozen JSON).
    const data = config.data;
    const dataKeys = keys(data);
    for (let i = 0; i < dataKeys.length; i++) {
      defineProperty(G, dataKeys[i], { value: deepFreeze(data[dataKeys[i]]), enumerable: true });
    }

    // The compiled script calls this exactly once with the model's code as an async function.
    defineProperty(G, RUN, {
      configurable: true,
      value: (fn) => {
        delete G[RUN];
        (async () => {
          let value;
          try {
            value = await fn();
            if (typeof value === 'function') value = await value();
          } catch (error) {
            fail(failure(error));
            return;
          }
          let text;
          try {
            text = jsonStringify(value);
          } catch (error) {
            fail({ kind: 'runtime', message: 'the result is not JSON: ' + describe(error), line: null });
            return;
          }
          if (text === undefined) text = 'null';
          if (text.length > maxResultUnits) {
            fail({ kind: 'limit', message: 'the result is larger than ' + maxResultUnits + ' bytes', line: null });
            return;
          }
          finish('1' + text);
        })();
      },
    });
    return normalise(config.code);
  };
})();
