from ptmcli.cli import entry

entry()
