/* SPDX-License-Identifier: MIT */
/* `herald serve`: parses flags and the config file, opens the data directory and runs. */
#ifndef HR_HTTP_SERVE_H
#define HR_HTTP_SERVE_H

int hr_serve_main(int argc, char **argv);

#endif
