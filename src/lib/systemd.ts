/**
 * systemd's notify protocol (sd_notify(3)): one datagram to the AF_UNIX socket named in
 * $NOTIFY_SOCKET. Bun and Node have no Unix datagram sockets, so libc's socket/sendto through bun:ffi
 * (works inside the compiled binary too). Without $NOTIFY_SOCKET every call does nothing.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;

type Libc = {
  symbols: {
    socket(d: number, t: number, p: number): number;
    sendto(fd: number, buf: unknown, len: number, flags: number, addr: unknown, alen: number): number | bigint;
    close(fd: number): number;
  };
};
let libc: Libc | undefined;

function open(): Libc {
  libc ??= dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: {
      args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i64,
    },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  }) as unknown as Libc;
  return libc;
}

/** notify: sends `state` (e.g. "READY=1", "STOPPING=1", "WATCHDOG=1"); true when a datagram went out. */
export function notify(state: string, socketPath = process.env.NOTIFY_SOCKET): boolean {
  if (!socketPath || (!socketPath.startsWith("/") && !socketPath.startsWith("@"))) return false;
  const path = Buffer.from(socketPath);
  if (path.length > 107) return false;
  if (socketPath.startsWith("@")) path[0] = 0; // the abstract namespace
  const addr = Buffer.alloc(2 + path.length);
  addr.writeUInt16LE(AF_UNIX, 0);
  path.copy(addr, 2);
  const message = Buffer.from(state);
  try {
    const c = open().symbols;
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    try {
      return Number(c.sendto(fd, ptr(message), message.length, 0, ptr(addr), addr.length)) === message.length;
    } finally {
      c.close(fd);
    }
  } catch {
    return false; // no libc.so.6 (a musl system): running without systemd notifications
  }
}

/** startWatchdog: WATCHDOG=1 at half of $WATCHDOG_USEC, from the event loop (a stuck loop stops the pings). */
export function startWatchdog(): (() => void) | undefined {
  const usec = Number(process.env.WATCHDOG_USEC ?? 0);
  const pid = process.env.WATCHDOG_PID;
  if (!usec || (pid && Number(pid) !== process.pid)) return undefined;
  const timer = setInterval(() => notify("WATCHDOG=1"), Math.max(500, usec / 2000));
  return () => clearInterval(timer);
}
