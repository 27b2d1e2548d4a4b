import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

/** Who holds a run folder: what `run.lock` records. */
export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  since: string;
}

/** An exclusive hold on a run folder; `release()` gives it up (idempotent). */
export interface RunLock {
  readonly file: string;
  readonly holder: LockHolder;
  release(): void;
}

/** The lock file of a run folder. */
export const LOCK_FILE = 'run.lock';

/** A lock file that is still empty after this long belongs to a process that died creating it. */
const EMPTY_LOCK_GRACE_MS = 10_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): { holder: LockHolder | null; text: string | null } {
  try {
    const text = fs.readFileSync(file, 'utf8');
    try {
      const h = JSON.parse(text) as LockHolder;
      return { holder: Number.isInteger(h.pid) && typeof h.host === 'string' ? h : null, text };
    } catch {
      return { holder: null, text };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { holder: null, text: null };
    throw err;
  }
}

/**
 * Why the lock in `file` is stale (its holder is gone), or null when it may be live. Only a
 * holder on this host can be checked; an empty or unreadable lock is stale once it is old.
 */
function staleReason(file: string, holder: LockHolder | null): string | null {
  if (holder === null) {
    const age = Date.now() - fs.statSync(file).mtimeMs;
    return age > EMPTY_LOCK_GRACE_MS ? 'an unreadable lock file' : null;
  }
  if (holder.host !== hostname()) return null;
  if (holder.pid === process.pid) return null;
  return pidAlive(holder.pid) ? null : `process ${holder.pid} is gone`;
}

function takeOver(file: string, text: string | null): boolean {
  // Move the stale file aside (atomic): of several processes finding the same stale lock, one
  // renames it; a lock created meanwhile by another is detected by its content and put back.
  const aside = `${file}.stale-${process.pid}`;
  try {
    fs.renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  const moved = fs.readFileSync(aside, 'utf8');
  if (moved !== text) {
    try {
      fs.linkSync(aside, file);
    } catch {
      // the newcomer's lock is lost only if a third process took the folder meanwhile
    }
    fs.rmSync(aside, { force: true });
    return false;
  }
  fs.rmSync(aside, { force: true });
  return true;
}

/** The error message for a lock file held by a live process (`holder` null: one still writing it). */
export type LockInUse = (holder: LockHolder | null, file: string) => string;

/**
 * Takes an exclusive lock file: created with O_EXCL, recording pid, host and time. A lock left by a
 * crashed process on this host is recovered (its pid is gone); a live holder (or one on another
 * host, which cannot be checked) is an error with `inUse`'s message. Release it when done; a process
 * exit releases it too. Run folders ({@link lockRunDir}) and sweep roots use it.
 */
export function lockFile(file: string, inUse: LockInUse): RunLock {
  const holder: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const text = `${JSON.stringify(holder)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`Cannot create the lock file ${file} (${(err as Error).message}).`);
      }
      const found = readHolder(file);
      if (found.text === null) continue; // released meanwhile
      const stale = staleReason(file, found.holder);
      if (stale === null) throw new Error(inUse(found.holder, file));
      takeOver(file, found.text);
      continue;
    }
    try {
      fs.writeFileSync(fd, text);
    } finally {
      fs.closeSync(fd);
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      process.removeListener('exit', release);
      if (readHolder(file).text === text) fs.rmSync(file, { force: true });
    };
    process.on('exit', release);
    return { file, holder, release };
  }
  throw new Error(`Cannot take the lock ${file}: other processes keep taking it; try again.`);
}

/**
 * Takes an exclusive lock on a run folder (`run.lock`, see {@link lockFile}); a live holder gives an
 * error naming it.
 */
export function lockRunDir(runDir: string): RunLock {
  return lockFile(path.join(runDir, LOCK_FILE), (h, file) => {
    const who = h === null ? 'a process that is starting' : `process ${h.pid} on ${h.host} since ${h.since}`;
    return (
      `The run folder ${runDir} is in use by ${who} (${file}). Wait for it to finish or choose another ` +
      `--run-dir; if that process is gone (e.g. its machine crashed), delete ${file}.`
    );
  });
}
