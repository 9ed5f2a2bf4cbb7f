"""``fewmul run BUILD/ --port PORT --images N``"""

import sys
from pathlib import Path

from .common import positive_int


def register(sub) -> None:
    r = sub.add_parser("run", help="check a programmed board over its serial port",
                       description="Send the first N test images to a board programmed with "
                                   "'fewmul build' over its serial port and compare every label "
                                   "and score with the golden model (BUILD/net.npz). Writes "
                                   "BUILD/<board>/run.json; exits 1 on any mismatch. With "
                                   "--bench, run the board's benchmark mode instead: it streams "
                                   "the test images of its block-RAM store through the network "
                                   "at full rate and reports the cycles, the correct labels and "
                                   "a checksum of the results, checked against the golden "
                                   "model (BUILD/<board>/bench.json).")
    r.add_argument("build", type=Path, metavar="BUILD", help="folder written by 'fewmul build'")
    r.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    r.add_argument("--images", type=positive_int, default=100, help="test images (default 100)")
    r.add_argument("--board", default=None,
                   help="board folder of BUILD to use (needed when several were built)")
    r.add_argument("--baud", type=positive_int, default=None,
                   help="serial rate (default: the one the bitstream was built with, from "
                        "BUILD/<board>/link.json)")
    r.add_argument("--bench", action="store_true",
                   help="run the benchmark mode (a build with --bench-images): inferences/s at "
                        "the board clock without the link in the way, accuracy, and whether "
                        "the results' checksum matches the golden model")
    r.add_argument("--train", action="store_true",
                   help="a board built from 'fewmul compile --train': stream the training "
                        "samples in the golden model's order, check every prediction, read all "
                        "weights back and compare them bit for bit with the golden model's, "
                        "then send the test set as inference requests (BUILD/<board>/"
                        "train_run.json); the board must be freshly programmed")
    r.add_argument("--steps", type=positive_int, default=None,
                   help="with --train: training samples (default: --epochs of the training set)")
    r.add_argument("--epochs", type=positive_int, default=None,
                   help="with --train: passes over the training set, reshuffled each (default 1)")
    r.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each answer")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=run)


def _built_baud(board_dir: Path) -> int:
    """The serial rate the board's bitstream was built with: its ``link.json``'s, else (a build
    of an older fewmul) its ``report.json``'s, else 115200."""
    from fewmul.nn.artifacts import ArtifactError, read_json
    for name in ("link.json", "report.json"):
        path = board_dir / name
        if not path.exists():
            continue
        fields = read_json(path)
        if "baud" not in fields:
            continue
        try:
            return int(fields["baud"])
        except (TypeError, ValueError):
            raise ArtifactError(f"{path}: the serial rate 'baud' is not a number; "
                                f"give --baud") from None
    return 115200


def run(args) -> int:
    import serial

    from fewmul.boards.host import HostLinkError, check_board, find_board_dir, run_bench
    from fewmul.boards.protocol import LinkFormat
    from fewmul.boards.train_protocol import TRAIN_LINK_KIND, TrainLinkFormat, link_kind
    board_dir = find_board_dir(args.build, args.board)
    training = link_kind(board_dir / "link.json") == TRAIN_LINK_KIND
    if training != args.train:
        print(f"fewmul run: error: {board_dir} is "
              + ("a training board: give --train" if training else
                 "an inference board: --train takes a board built from 'fewmul compile --train'"),
              file=sys.stderr)
        return 2
    if (args.steps or args.epochs) and not args.train:
        print("fewmul run: error: --steps and --epochs go with --train", file=sys.stderr)
        return 2
    # a bad file is named before the port is opened
    (TrainLinkFormat if training else LinkFormat).load(board_dir / "link.json")
    baud = args.baud or _built_baud(board_dir)
    try:
        with serial.Serial(args.port, baud, timeout=0.1, exclusive=True) as port:
            port.reset_input_buffer()
            if training:
                from fewmul.boards.train_host import format_training_run, run_training
                result = run_training(port, args.build, steps=args.steps, epochs=args.epochs,
                                      board=board_dir.name, timeout=args.timeout,
                                      progress=not args.quiet)
                print(format_training_run(result, baud))
                return 0 if (result["prediction_mismatches"] == 0 and result["weights_equal"]
                             and result["inference_mismatches"] == 0) else 1
            if args.bench:
                return _print_bench(run_bench(port, args.build, board=board_dir.name,
                                              timeout=args.timeout))
            result = check_board(port, args.build, args.images, board=board_dir.name,
                                 timeout=args.timeout, progress=not args.quiet)
    except serial.SerialException as exc:
        print(f"fewmul run: error: cannot use {args.port}: {exc}", file=sys.stderr)
        return 2
    except HostLinkError as exc:
        print(f"fewmul run: error: {exc}", file=sys.stderr)
        return 1
    status = "OK" if result["mismatches"] == 0 else "FAIL"
    print(f"board {status}: {result['images']} images, {result['mismatches']} mismatches with the "
          f"golden model, accuracy {100 * result['accuracy']:.2f} %, "
          f"{result['inferences_per_s']:.0f} inferences/s over {baud} baud")
    if result["first_mismatch"]:
        print(f"first mismatch: {result['first_mismatch']}")
    return 0 if result["mismatches"] == 0 else 1


def _print_bench(result: dict) -> int:
    clock = result["clock_hz"] / 1e6
    ok = "matches" if result["checksum_ok"] else "DOES NOT MATCH"
    print(f"benchmark: {result['images']} images in {result['cycles']} cycles "
          f"(predicted {result['predicted_cycles']}): {result['inferences_per_s']:,.0f} "
          f"inferences/s at {clock:g} MHz; accuracy {100 * result['accuracy']:.2f} % "
          f"({result['correct']} correct, golden model {result['golden_correct']}); checksum "
          f"{result['checksum']} {ok} the golden model's")
    return 0 if result["checksum_ok"] and result["correct"] == result["golden_correct"] else 1
