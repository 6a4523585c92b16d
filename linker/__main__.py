from linker.cli import main

main()
