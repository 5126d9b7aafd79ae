"""The key-specificity check on the orientation sweep's per-query answers (lab; repo root).

Reads orientation_tuning.py's per-query (P_b, P_w) at every carrier offset and replays, for a
claimant whose carrier sits at offset r from the key a suspect learned (r = 0: the owner),
VerifyConfig(specificity=d): the main t-test (tau 0.2) on its own mark and the paired t-tests
(margin 0) of its own mark against its marks turned by -d and +d; claimed when all three have
p < 0.01. Prints, per suspect and query choice, which offsets would be claimed, and the share of
the orientation circle a rival key would have to fall in to be claimed (offsets |r| <= RANGE,
default 40, swept every 5 degrees; the check is not replayed where a turned mark falls off the
swept grid, and those offsets count as without it). Specificity 0 = no check. Keys lie in
[0, 180) degrees, so RANGE=90 covers every rival; a sweep to +/-(90 + d) replays the check for
all of them (a carrier turned past 90 degrees is the grating of the key 180 degrees away with
its sign flipped: not the same mark, so the far offsets are swept, not folded).

    python docs/lab/learnability/peak_test.py /tmp/exp/tuning.npz /tmp/exp/tuning2.npz
    DS=25,35,40 python docs/lab/learnability/peak_test.py /tmp/exp/tuning_p400.npz /tmp/exp/tuning_p400_wide.npz
    RANGE=90 DS=25,40 python docs/lab/learnability/peak_test.py /tmp/exp/tuning_32px_circA.npz /tmp/exp/tuning_32px_circB.npz
"""
import os
import sys
from collections import defaultdict

import numpy as np
from check_replay import claim

from xmark_core.verify import stats

answers = defaultdict(dict)  # (suspect, queries) -> offset -> (m, 2)
for f in sys.argv[1:] or ["/tmp/exp/tuning.npz"]:
    data = np.load(f)
    for k in data.files:
        name, q, off = k.split("|")
        answers[(name, q)][float(off)] = data[k]


RANGE = float(os.environ.get("RANGE", 40))


def rival(r):
    """A rival key's offset within the replayed range (-90 and +90 are one key)."""
    return r != 0 and abs(r) <= RANGE and r > -90


GRID = 5.0  # degrees between swept offsets: each claimed offset stands for GRID of the circle
for q in ("random", "boundary"):
    if not any(qq == q for _, qq in answers):  # e.g. negative_marks.py sweeps boundary queries only
        continue
    for d in [float(x) for x in os.environ.get("DS", "0,10,15,20,25,30").split(",")]:
        print(f"\n{q}, specificity {d:g}: offsets claimed (p = max of main, minus, plus)")
        owners, zone, learned = 0, [], []
        for (name, qq), a in sorted(answers.items()):
            if qq != q or name.startswith(("clean", "shipped_clean")):
                continue
            plain = [r for r in sorted(a) if rival(r)
                     and stats.paired_ttest(a[r][:, 1], a[r][:, 0], 0.2).p_value < 0.01]
            own = claim(a, 0.0, d) if d else (stats.paired_ttest(a[0.0][:, 1], a[0.0][:, 0], 0.2).p_value,)
            tried = sorted(r for r in a if rival(r) and (not d or claim(a, r, d) is not None))
            won = [r for r in tried if max(claim(a, r, d) if d else
                                           (stats.paired_ttest(a[r][:, 1], a[r][:, 0], 0.2).p_value,)) < 0.01]
            # offsets the check could not be replayed at (turned marks off the grid): as without it
            upper = won + [r for r in plain if r not in tried]
            owners += max(own) < 0.01
            zone.append(GRID * len(upper))
            if own[0] < 0.01:  # the main test alone: the suspect learned the mark
                learned.append(zone[-1])
            print(f"  {name:12s} owner p {max(own):.1g} | rivals claimed {won} of {len(tried)} tried"
                  f" | untried but claimed without the check {[r for r in plain if r not in tried]}")
        print(f"  => owner claimed {owners} of {len(zone)}; rival keys claimed over ~{np.mean(zone):.0f} degrees "
              f"of 180 on average (a random rival key: {np.mean(zone) / 180:.0%}), at most {max(zone):.0f}; "
              f"over the {len(learned)} that learned the mark (main p < 0.01): "
              f"{np.mean(learned) if learned else 0:.0f} degrees ({np.mean(learned) / 180 if learned else 0:.0%})")
