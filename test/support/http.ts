/** A response read whole: status, content type, the text, and the text as JSON when it is JSON. */
export interface Answer {
  readonly status: number
  readonly contentType: string | null
  readonly headers: Headers
  readonly text: string
  /** undefined when the body is not JSON (the tests then check status and text). */
  readonly json: any
}

export const readAnswer = async (res: Response): Promise<Answer> => {
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, contentType: res.headers.get("content-type"), headers: res.headers, text, json }
}
