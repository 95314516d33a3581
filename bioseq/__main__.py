from bioseq.cli import main

main()
