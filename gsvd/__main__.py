from gsvd.cli import main

main()
