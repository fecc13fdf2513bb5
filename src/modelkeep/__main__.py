from modelkeep.cli import main

main()
