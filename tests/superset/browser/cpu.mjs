// CPU seconds used so far by every process this node process started (Chromium's browser, GPU,
// network and renderer processes), read from /proc: how much work a dashboard visit costs the
// machine's cores, beside the wall time it takes. Linux only; null elsewhere.
import { readFileSync, readdirSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

const stat = (pid) => {
  // The command name (field 2) may hold spaces: split after its closing parenthesis.
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // utime + stime, plus cutime + cstime: the children it has already reaped
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return { ppid: Number(fields[1]), ticks };
};

export const descendantsCpuSeconds = () => {
  let pids;
  try {
    pids = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  const processes = new Map();
  for (const pid of pids) {
    try {
      processes.set(Number(pid), stat(pid));
    } catch {
      // the process ended while /proc was read
    }
  }
  const mine = new Set([process.pid]);
  let ticks = 0;
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, { ppid, ticks: used }] of processes) {
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        ticks += used;
        grew = true;
      }
    }
  }
  return ticks / TICKS_PER_SECOND;
};
