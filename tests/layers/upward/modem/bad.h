/* An upward include for scripts/check-layers to find. */
#include "mqtt/json.h"
