"""Summarise a `py-spy record --format raw` file: where a service process spends its CPU.

    py-spy record --pid <pid> --duration 10 --format raw --output prof.txt --nonblocking
    .venv/bin/python -m bench.profile_summary prof.txt [--top 25]

Prints, for the frames that matter most, the share of samples that have the frame on the stack
(inclusive) and the share where it is the innermost frame (self).
"""

import argparse
import re
from collections import Counter

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^)]*?)(?::\d+)?\)$")


def summarise(path: str, top: int = 25) -> str:
    inclusive: Counter = Counter()
    self_time: Counter = Counter()
    total = 0
    with open(path) as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = []
            for raw in stack.split(";"):
                m = FRAME.match(raw.strip())
                label = f"{m['func']} ({m['file']})" if m else raw.strip()
                label = label.split("site-packages/")[-1]
                frames.append(label)
            for label in set(frames):
                inclusive[label] += n
            if frames:
                self_time[frames[-1]] += n
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {label}" for label, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {label}" for label, n in self_time.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.path, args.top))
