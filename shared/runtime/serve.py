"""`python -m shared.runtime.serve run --config services/X/config.yml services.X.service`:
`nameko run`, with the configuration read as shared.runtime.config reads it (services/base.yml
under the service's own file), the catalogued class of a service module (which also holds the
base classes), without the libraries' deprecation notices in the service logs (see
shared.runtime.quiet), under a umask of 077 (see shared.runtime.private), with nameko made to
survive the broker going away (see shared.runtime.survive), in a container that stops within
seconds of SIGTERM (see shared.runtime.stopping), and `kill -USR1` logging its green threads'
stacks (see shared.runtime.stacks)."""

from __future__ import annotations

import sys

from shared.runtime.private import private_umask
from shared.runtime.quiet import quiet


def main() -> int:
    import logging.config

    from nameko.cli.main import setup_parser

    if sys.argv[1:2] != ["run"]:  # another nameko command: nameko's own CLI
        from nameko.cli.main import main as nameko_main

        return int(nameko_main() or 0)
    args, _unknown = setup_parser().parse_known_args()
    import eventlet

    eventlet.monkey_patch()  # as `nameko run` does, before the services are imported
    from nameko.cli.run import import_service, run

    from shared.runtime import stacks
    from shared.runtime.catalogue import class_path
    from shared.runtime.config import load_config_file
    from shared.runtime.stopping import CLASS_PATH
    from shared.runtime.survive import install

    install()  # no service process dies because the broker went away (see survive.py)
    stacks.install()  # kill -USR1 logs every green thread's stack (see stacks.py)

    config = load_config_file(args.config) if args.config else {"AMQP_URI": args.broker}
    config.setdefault("SERVICE_CONTAINER_CLS", CLASS_PATH)
    if "LOGGING" in config:
        logging.config.dictConfig(config["LOGGING"])
    services = [cls for path in args.services for cls in import_service(class_path(path))]
    run(services, config, backdoor_port=args.backdoor_port)
    return 0


if __name__ == "__main__":
    private_umask()  # the service's databases and files are this user's only
    quiet()
    sys.exit(main())
