/* SPDX-License-Identifier: MIT */
/* CloudEvents SQL (CESQL v1) filters: reserved until the evaluator lands. */
#include "filter/filter_int.h"

const hr_filter_dialect_t hr__filter_cesql = {"cesql", NULL, NULL, NULL, NULL};
const hr_filter_dialect_t hr__filter_sql = {"sql", NULL, NULL, NULL, NULL};
