"""``fewmul data SET``: check a data set, or fetch MNIST once with ``--download``."""

from pathlib import Path


def register(sub) -> None:
    d = sub.add_parser("data", help="check a data set, or download MNIST into the cache",
                       description="Load SET (digits, fashion-mnist or mnist), check every IDX "
                                   "file and print where it comes from and its splits. "
                                   "'fewmul data mnist --download' fetches the four MNIST files "
                                   "once into the cache (or --dir) and verifies their published "
                                   "MD5 checksums. Fashion-MNIST comes from the Debian package "
                                   "dataset-fashion-mnist ('make data').")
    d.add_argument("set", choices=["digits", "fashion-mnist", "mnist"], help="data set")
    d.add_argument("--dir", type=Path, default=None,
                   help="directory of the IDX files (default: the Debian package's for "
                        "fashion-mnist, the cache for mnist)")
    d.add_argument("--download", action="store_true", help="mnist: fetch the files and verify them")
    d.add_argument("--url", action="append", default=None, metavar="URL",
                   help="mnist --download: base URL to fetch from (repeatable; default: the "
                        "usual mirrors)")
    d.set_defaults(func=run)


def run(args) -> int:
    from fewmul.nn.config import DataConfig
    from fewmul.nn.data import MNIST_URLS, data_dir, download_mnist, load_dataset, verify_checksums
    cfg = DataConfig(set=args.set, input_bits=4 if args.set == "digits" else 8,
                     dir=None if args.dir is None else str(args.dir))
    if args.download:
        if args.set != "mnist":
            raise ValueError(f"--download is for mnist; {args.set} "
                             + ("ships inside the package" if args.set == "digits" else
                                "comes from the Debian package dataset-fashion-mnist: run 'make data'"))
        download_mnist(data_dir(cfg), urls=tuple(args.url or MNIST_URLS))
    if args.set == "mnist" and (data_dir(cfg) / "train-images-idx3-ubyte.gz").is_file():
        problems = verify_checksums(data_dir(cfg))
        if problems:
            raise ValueError("MNIST checksums do not match: " + "; ".join(problems))
        print(f"{data_dir(cfg)}: MD5 checksums OK")
    data = load_dataset(cfg)
    where = "bundled with fewmul" if args.set == "digits" else str(data_dir(cfg))
    print(f"{args.set} ({where}): {data.inputs} pixels, {data.classes} classes; "
          f"train {len(data.train)}, validation {len(data.val)}, test {len(data.test)}")
    return 0
