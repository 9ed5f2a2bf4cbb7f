"""``fewmul sim BUILD/ --images N``; ``fewmul sim BUILD/ --train-steps N`` for a training build."""

from pathlib import Path

from fewmul.compiler.folders import BuildFolder
from fewmul.sim.check import DEFAULT_TESTBENCH_IMAGES

from .common import non_negative_int, positive_int, print_sim, sim_ok


def register(sub) -> None:
    s = sub.add_parser("sim", help="simulate a build under cocotb + Verilator",
                       description="Run BUILD/top.v under Verilator on test images and compare the "
                                   "labels and scores with the integer golden model (a compiled "
                                   "harness), and every layer's outputs of the first images "
                                   "(the cocotb testbench, with random stalls). For an on-chip "
                                   "training build, --train-steps N trains it and checks every "
                                   "step. Writes BUILD/sim.json; exits 1 on any mismatch.")
    s.add_argument("build", type=Path, metavar="BUILD", help="folder written by 'fewmul compile'")
    s.add_argument("--images", type=positive_int, default=200,
                   help="test images to simulate (default 200): their labels and scores are "
                        "checked in the compiled Verilator harness, the first "
                        "--testbench-images also layer by layer in the cocotb testbench")
    s.add_argument("--testbench-images", type=non_negative_int, default=DEFAULT_TESTBENCH_IMAGES,
                   metavar="K",
                   help="images the cocotb testbench checks layer by layer, at full speed and "
                        f"with random stalls (default {DEFAULT_TESTBENCH_IMAGES}; with no more "
                        "images than this the testbench alone runs)")
    s.add_argument("--stall", type=float, default=0.25,
                   help="probability of idle/back-pressure cycles in the second pass "
                        "(default 0.25; 0: one clean pass)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random stalls")
    s.add_argument("--random-images", action="store_true",
                   help="random pixels instead of test images (for a net whose data set is not "
                        "here; the accuracy is then meaningless, the bit-exact check is not)")
    s.add_argument("--train-steps", type=positive_int, default=None, metavar="N",
                   help="for a 'compile --train' build: train on chip for N steps in a compiled "
                        "Verilator harness, check the weights and the prediction against the "
                        "golden model after every step, write the accuracy curve "
                        "BUILD/train_curve.png and BUILD/sim.json")
    s.add_argument("--testbench", action="store_true",
                   help="with --train-steps: run the cocotb testbench instead of the compiled "
                        "harness (Python every clock cycle: about 8 steps/s)")
    s.add_argument("--detail", action="store_true",
                   help="with --train-steps: the harness sends every weight row the design "
                        "writes and each one is compared (default: a digest of the weights "
                        "after every step, and a second, detailed run to locate a mismatch)")
    s.set_defaults(func=run)


def run(args) -> int:
    if args.train_steps is not None or BuildFolder(args.build).trains_on_chip:
        from fewmul.sim.train_runner import check_training, format_result
        if args.train_steps is None:
            raise ValueError(f"{args.build} holds an on-chip training design: give --train-steps N")
        if args.testbench and args.detail:
            raise ValueError("--detail is a mode of the compiled harness; the cocotb testbench "
                             "(--testbench) always compares every weight")
        if args.testbench:
            result = check_training(args.build, args.train_steps)
            print(format_result(result))
        else:
            from fewmul.sim.train_fast import check_training_fast, format_fast
            result = check_training_fast(args.build, args.train_steps,
                                         mode="detail" if args.detail else "digest")
            print(format_result(result))
            print(format_fast(result))
        return 0 if result["bit_exact"] else 1
    from fewmul.sim.check import check_build

    if args.testbench or args.detail:
        raise ValueError(f"--testbench and --detail are for a training build with --train-steps; "
                         f"{args.build} is an inference build (its cocotb testbench runs on the "
                         f"first --testbench-images images)")
    result = check_build(args.build, args.images, stall=args.stall, seed=args.seed,
                         random_images=args.random_images,
                         testbench_images=args.testbench_images)
    print_sim(result)
    return 0 if sim_ok(result) else 1
