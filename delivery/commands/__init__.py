"""One module per `delivery` subcommand group, each with `register(subparsers)`."""
