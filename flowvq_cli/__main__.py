from flowvq_cli.cli import main

main()
