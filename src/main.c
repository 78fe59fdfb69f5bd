/* SPDX-License-Identifier: MIT */
/* herald: `herald serve` runs the server; every other subcommand is an API client. */
#include "cli/cli.h"
#include "http/serve.h"

#include <string.h>

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        return hr_serve_main(argc - 1, argv + 1);
    }
    return hr_cli_main(argc, argv);
}
