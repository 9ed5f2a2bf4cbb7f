"""``fewmul demo [-o DIR]``: train, compile and simulate the bundled digits example."""

from importlib import resources
from pathlib import Path

from .common import positive_int, print_compile, print_sim, print_train, sim_ok


def example_spec() -> Path:
    """The bundled ``examples/digits-bnn.yaml`` (installed as ``fewmul.examples``)."""
    return Path(str(resources.files("fewmul.examples").joinpath("digits-bnn.yaml")))


def register(sub) -> None:
    d = sub.add_parser("demo", help="train, compile and simulate the digits example",
                       description="The whole path on the embedded 8x8 digits data: train "
                                   "examples/digits-bnn.yaml, compile it, simulate test images.")
    d.add_argument("-o", "--output", type=Path, default=Path("build/demo"),
                   help="output folder (default build/demo)")
    d.add_argument("--spec", type=Path, default=None, help="another spec to run instead of the example")
    d.add_argument("--images", type=positive_int, default=200, help="test images to simulate (default 200)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=run)


def run(args) -> int:
    from fewmul.compiler.emit import compile_run
    from fewmul.compiler.training import train_run
    from fewmul.sim.check import check_build
    out = Path(args.output)
    spec = args.spec or example_spec()
    print(f"== train {spec}")
    summary = train_run(spec, out / "run", progress=not args.quiet)
    print("== compile")
    report = compile_run(out / "run", out / "build", synth=("generic",))
    print(f"== simulate {args.images} test images under cocotb + Verilator")
    result = check_build(out / "build", args.images, stall=0.25)
    print("== summary")
    print_train(summary)
    print_compile(report, out / "build")
    print_sim(result)
    return 0 if sim_ok(result) else 1
