from lumozbatch.cli import main

main(prog_name="lumozbatch")
