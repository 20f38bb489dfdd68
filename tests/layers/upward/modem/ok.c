/* Includes of its own layer and the layers below: allowed. */
#include "at/chat.h"
#include "core/log.h"
#include "modem/error.h"
