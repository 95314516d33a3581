"""Count fuzz outcomes per command: ``python tests/fuzz/measure.py --n 340 --seed 13``.

Runs the generated malformed inputs through every sequence-reading command in-process and prints
counts of each outcome (see ``harness.py``). Point ``PYTHONPATH`` at another checkout to measure
that code with the same corpus (the generator and harness are loaded from this folder).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import generate  # noqa: E402
from harness import OUTCOMES, cli_invoker, make_env, run_all, run_hazards  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=340)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--examples", type=int, default=3, help="examples printed per (command, outcome)")
    ap.add_argument("--json", type=Path, help="also write the counts here")
    args = ap.parse_args()
    import bioseq

    t0 = time.time()
    invoke = cli_invoker()
    cases = generate(args.seed, args.n)
    with tempfile.TemporaryDirectory(prefix="bioseq-fuzz-") as tmp:
        env = make_env(Path(tmp) / "env", invoke)
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        for case, cmd, outcome, detail in run_all(cases, env, invoke, Path(tmp) / "work"):
            counts[cmd][outcome] += 1
            if outcome != "clean" and len(examples[cmd, outcome]) < args.examples:
                examples[cmd, outcome].append(f"{case.id}: {detail}")
        hazard_results = run_hazards(env, invoke, Path(tmp) / "hazards")
    print(f"bioseq from {Path(bioseq.__file__).parent}; {len(cases)} inputs, seed {args.seed}, "
          f"{time.time() - t0:.1f} s")
    print(f"{'command':<10}" + "".join(f"{o:>11}" for o in ("runs",) + OUTCOMES))
    total: collections.Counter = collections.Counter()
    for cmd, c in counts.items():
        total.update(c)
        print(f"{cmd:<10}{sum(c.values()):>11}" + "".join(f"{c[o]:>11}" for o in OUTCOMES))
    print(f"{'total':<10}{sum(total.values()):>11}" + "".join(f"{total[o]:>11}" for o in OUTCOMES))
    for (cmd, outcome), exs in sorted(examples.items()):
        for e in exs:
            print(f"  [{cmd} {outcome}] {e}")
    print("output-path hazards:")
    for name, outcome, tail in hazard_results:
        print(f"  {name:<42} {outcome:<10} {tail}")
    hz = collections.Counter(o for _, o, _ in hazard_results)
    print("hazards total: " + ", ".join(f"{k} {v}" for k, v in sorted(hz.items())))
    if args.json:
        args.json.write_text(json.dumps({"inputs": len(cases), "seed": args.seed,
                                         "counts": {k: dict(v) for k, v in counts.items()},
                                         "total": dict(total), "hazards": hazard_results}, indent=1))


if __name__ == "__main__":
    main()
