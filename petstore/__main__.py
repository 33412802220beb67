from petstore.cli import cli

cli()
