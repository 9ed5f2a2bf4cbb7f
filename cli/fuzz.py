"""``fewmul fuzz [--count N] [--seed S]``"""

import tempfile
from pathlib import Path

from .common import non_negative_int, positive_int


def register(sub) -> None:
    f = sub.add_parser("fuzz", help="check random networks bit-exact against the golden model",
                       description="Generate random networks over what the compiler accepts "
                                   "(dense and conv layers of awkward widths, binary/ternary "
                                   "weights, sign and k-bit activations, 1..8-bit inputs, "
                                   "extreme thresholds, tied scores, planner and explicit "
                                   "foldings, pipeline depths), simulate them in Verilator with "
                                   "random stalls, many networks per model, and compare every "
                                   "label and score with the golden model. Prints how many ran "
                                   "and failed, and the seed of each failure; exits 1 on any.")
    f.add_argument("--count", type=positive_int, default=1000,
                   help="random networks to check (default 1000)")
    f.add_argument("--start", type=non_negative_int, default=0,
                   help="seed of the first network (default 0; the others follow)")
    f.add_argument("--seed", type=non_negative_int, default=None, metavar="S",
                   help="replay the network of seed S alone: its description, then the cocotb "
                        "testbench, every layer, with stalls")
    f.add_argument("--images", type=positive_int, default=16,
                   help="images per network (default 16)")
    f.add_argument("--stall", type=float, default=0.25,
                   help="probability of idle input and back-pressure cycles (default 0.25; 0: "
                        "none)")
    f.add_argument("--batch", type=positive_int, default=25,
                   help="networks compiled into one Verilator model (default 25)")
    f.add_argument("-o", "--output", type=Path, default=None, metavar="DIR",
                   help="work folder (default: a temporary one, removed afterwards)")
    f.set_defaults(func=run)


def run(args) -> int:
    from fewmul.sim.fuzz import random_case, replay, run_fuzz

    if not 0 <= args.stall < 1:
        raise ValueError(f"Stall probability must be in [0, 1), not {args.stall!r}")
    with tempfile.TemporaryDirectory(prefix="fewmul-fuzz-") as tmp:
        work = args.output or Path(tmp)
        if args.seed is not None:
            print(f"seed {args.seed}: {random_case(args.seed).description}")
            result = replay(args.seed, work / f"seed{args.seed}", images=args.images,
                            stall=args.stall)
            ok = result["mismatches"] == 0 and not result["error"]
            print(f"replay {'OK' if ok else 'FAIL'}: {result['images']} images, "
                  f"{result['mismatches']} mismatches (every layer, cocotb testbench)")
            for key in ("first_mismatch", "error"):
                if result.get(key):
                    print(f"{key.replace('_', ' ')}: {result[key]}")
            return 0 if ok else 1

        def progress(report) -> None:
            print(f"  {report.ran}/{args.count} networks, {len(report.failures)} failed, "
                  f"{report.seconds:.0f} s", flush=True)

        report = run_fuzz(range(args.start, args.start + args.count), work,
                          images=args.images, stall=args.stall, batch=args.batch,
                          progress=progress)
    print(report.summary())
    return 1 if report.failures else 0
