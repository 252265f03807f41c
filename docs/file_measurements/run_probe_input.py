#!/usr/bin/env python3
"""compact probe input: lines 'op proc args...' (regions: 'region pages'; procs n); pads args to 4, numbers steps"""
import sys, subprocess, os
lines = [l.split('#')[0].strip() for l in open(sys.argv[1])]
out = ["cowsim-probe 1"]; n = 0; addr = 0x600000000000; span = 0x200000
regs = []
procs = 1
steps = []
for l in lines:
    if not l: continue
    w = l.split()
    if w[0] == 'procs': procs = int(w[1]); continue
    if w[0] == 'region':
        pages = int(w[1]); regs.append((addr, pages))
        end = addr + (pages + 1) * 4096
        addr = (end + span - 1) // span * span + span
        continue
    args = w[2:] + ['0'] * (4 - len(w[2:]))
    n += 1
    steps.append(f"step {n} {w[0]} {w[1]} {' '.join(args)}")
out.append(f"procs {procs}")
for i, (a, p) in enumerate(regs): out.append(f"region {i} {a:x} {p}")
out += steps + ["end"]
inp = "\n".join(out) + "\n"
if '-v' in sys.argv: print(inp)
env = dict(os.environ, GLIBC_TUNABLES="glibc.pthread.rseq=0")
r = subprocess.run([os.environ.get("PROBE", "/tmp/probe_t"), "run"], input=inp, capture_output=True, text=True, env=env)
short = '-s' in sys.argv
for line in r.stdout.splitlines():
    if short and line.startswith('r '):
        w = line.split(); d = dict(zip(w[4::2], w[5::2]))
        if d['mapped'] == '0': continue
        keep = ['Rss','Pss','Shared_Clean','Shared_Dirty','Private_Clean','Private_Dirty','Anonymous','Pss_File']
        line = ' '.join(w[:4]) + ' ' + ' '.join(f"{k} {d[k]}" for k in keep)
    if short and line.startswith('m '):
        line = line.replace(' copied -1','').replace(' data -1','')
    print(line)
print(r.stderr, end=""); print("rc", r.returncode) if r.returncode else None
