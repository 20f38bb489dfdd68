/* An upward include for scripts/check-layers to find. */
#include "modem/error.h"
