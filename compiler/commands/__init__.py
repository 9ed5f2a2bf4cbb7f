"""``fewmul`` subcommands, one module each.

Each module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function taking the parsed arguments and returning the exit
code. :data:`COMMANDS` lists them in the order ``fewmul --help`` shows.
"""

COMMANDS = [
    "fewmul.compiler.commands.train",
    "fewmul.compiler.commands.count",
    "fewmul.compiler.commands.data",
    "fewmul.compiler.commands.compile",
    "fewmul.compiler.commands.sim",
    "fewmul.compiler.commands.build",
    "fewmul.compiler.commands.run",
    "fewmul.compiler.commands.demo",
]
