// The kernel<->user contract (bpf/include/events.h) as C++ sees it, with its
// layout pinned: a field moved on one side only fails the build.
#pragma once

#include <cstddef>

#include "events.h"

static_assert(sizeof(corral_path) == 8);
static_assert(sizeof(corral_task) == 16);
static_assert(sizeof(corral_event_header) == 64);
static_assert(offsetof(corral_event_header, session_id) == 16);
static_assert(offsetof(corral_event_header, comm) == 48);
static_assert(offsetof(corral_exec_event, data) == 96);
static_assert(sizeof(corral_exit_event) == 72);
static_assert(offsetof(corral_open_event, data) == 88);
static_assert(offsetof(corral_unlink_event, data) == 88);
static_assert(offsetof(corral_rename_event, data) == 96);
static_assert(offsetof(corral_truncate_event, data) == 88);
static_assert(offsetof(corral_connect_event, unix_path) == 96);
static_assert(sizeof(corral_connect_event) == 208);
static_assert(CORRAL_SLOT_SIZE == 8192);
static_assert((CORRAL_PATH_COMPONENTS_MAX & (CORRAL_PATH_COMPONENTS_MAX - 1)) == 0,
              "the kernel masks offsets with CORRAL_PATH_COMPONENTS_MAX - 1");
