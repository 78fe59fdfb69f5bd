/* SPDX-License-Identifier: MIT */
/* EventBridge-style content patterns: reserved until the matcher lands. */
#include "filter/filter_int.h"

const hr_filter_dialect_t hr__filter_pattern = {"pattern", NULL, NULL, NULL, NULL};
