import { describe, expect, it } from 'vitest';
import {
  AbortError,
  ConfigError,
  DataError,
  NumericError,
  OFM_ERROR_KINDS,
  OfmError,
  errorKind,
  isAbortError,
  isOfmError,
  throwIfAborted,
} from '../src/index';

describe('the error kinds', () => {
  const cases = [
    [new ConfigError('bad value'), ConfigError, 'ConfigError', 'config'],
    [new DataError('bad file'), DataError, 'DataError', 'data'],
    [new NumericError('NaN'), NumericError, 'NumericError', 'numeric'],
    [new AbortError(), AbortError, 'AbortError', 'aborted'],
  ] as const;

  it.each(cases)('%s: name, kind, code (the kind by default), instanceof', (err, cls, name, kind) => {
    expect(err).toBeInstanceOf(cls);
    expect(err).toBeInstanceOf(OfmError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe(name);
    expect(err.kind).toBe(kind);
    expect(err.code).toBe(kind);
    expect(OFM_ERROR_KINDS).toContain(kind);
    expect(String(err)).toBe(`${name}: ${err.message}`);
    expect(err.stack?.split('\n')[0]).toBe(`${name}: ${err.message}`);
    expect(isOfmError(err)).toBe(true);
    expect(errorKind(err)).toBe(kind);
  });

  it('keeps the message exactly, takes a more specific code and a cause', () => {
    const cause = new Error('ENOENT');
    const err = new DataError('x.png: no such file', { code: 'missing-file', cause });
    expect(err.message).toBe('x.png: no such file');
    expect(err.code).toBe('missing-file');
    expect(err.kind).toBe('data');
    expect(err.cause).toBe(cause);
    expect('cause' in new ConfigError('no cause')).toBe(false);
  });

  it('one kind is not another', () => {
    expect(new ConfigError('x')).not.toBeInstanceOf(DataError);
    expect(new DataError('x')).not.toBeInstanceOf(ConfigError);
  });

  it('subclasses keep their place in the hierarchy', () => {
    class DatasetLikeError extends DataError {
      override readonly name: string = 'DatasetLikeError';
    }
    const err = new DatasetLikeError('a/b: empty');
    expect(err).toBeInstanceOf(DataError);
    expect(err.name).toBe('DatasetLikeError');
    expect(errorKind(err)).toBe('data');
  });

  it('recognises an OfmError of another copy of the package (ESM and CJS side by side) by its brand', () => {
    const foreignBase = class extends Error {};
    Object.defineProperty(foreignBase.prototype, Symbol.for('@ofm/errors.OfmError'), { value: true });
    const foreign = Object.assign(new foreignBase('from the other copy'), { kind: 'checkpoint', code: 'truncated' });
    expect(foreign).not.toBeInstanceOf(OfmError);
    expect(isOfmError(foreign)).toBe(true);
    expect(errorKind(foreign)).toBe('checkpoint');
  });

  it('anything else has no kind', () => {
    for (const value of [new Error('x'), new RangeError('x'), new TypeError('x'), 'text', null, undefined, { kind: 'config' }]) {
      expect(isOfmError(value)).toBe(false);
      expect(errorKind(value)).toBeUndefined();
    }
  });
});

describe('cancellation', () => {
  it("AbortError is named 'AbortError' and says 'interrupted' unless told otherwise", () => {
    expect(new AbortError().message).toBe('interrupted');
    expect(new AbortError('synth: aborted').message).toBe('synth: aborted');
  });

  it("isAbortError: ours, the DOM's (AbortSignal.throwIfAborted) and nothing else", () => {
    const controller = new AbortController();
    controller.abort();
    let dom: unknown;
    try {
      controller.signal.throwIfAborted();
    } catch (err) {
      dom = err;
    }
    expect((dom as Error).name).toBe('AbortError');
    expect(isAbortError(dom)).toBe(true);
    expect(isAbortError(new AbortError())).toBe(true);
    expect(isAbortError(new Error('interrupted'))).toBe(false);
    expect(isAbortError(new ConfigError('x'))).toBe(false);
  });

  it('throwIfAborted throws an AbortError once the signal fired', () => {
    const controller = new AbortController();
    expect(() => throwIfAborted(controller.signal)).not.toThrow();
    expect(() => throwIfAborted(undefined)).not.toThrow();
    controller.abort();
    expect(() => throwIfAborted(controller.signal)).toThrow(AbortError);
  });
});
