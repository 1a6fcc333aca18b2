// What "in order at the hub" means with many messages in flight: a message the hub throttled can be sent
// again after a later one was already accepted, and that later one is then sent again too (go-back-N). So
// order is judged on the LAST copy of each messageId the hub recorded: keep the last occurrence of every id,
// and the result must follow the order of the sendTelemetry calls (README "Delivery").

/** `received` with every id kept only at its last occurrence. */
export function lastOccurrences(received: readonly string[]): string[] {
  const lastIndex = new Map<string, number>();
  received.forEach((id, index) => lastIndex.set(id, index));
  return received.filter((id, index) => lastIndex.get(id) === index);
}

/** Ids whose last copy at the hub came before the last copy of a message sent earlier. */
export function outOfOrderByLastCopy(sent: readonly string[], received: readonly string[]): string[] {
  const order = new Map(sent.map((id, index) => [id, index]));
  const outOfOrder: string[] = [];
  let highest = -1;
  for (const id of lastOccurrences(received)) {
    const index = order.get(id);
    if (index === undefined) continue;
    if (index < highest) outOfOrder.push(id);
    highest = Math.max(highest, index);
  }
  return outOfOrder;
}
