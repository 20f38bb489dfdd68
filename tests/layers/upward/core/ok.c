/* The lowest layer: allowed to include only itself. */
#include "core/utf8.h"
