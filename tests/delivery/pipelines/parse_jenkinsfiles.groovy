// Parses Jenkinsfiles to the CONVERSION phase in one JVM and prints, per file, the AST events (calls, constants) as JSON.
import org.codehaus.groovy.control.*
import org.codehaus.groovy.ast.*
import org.codehaus.groovy.ast.expr.*
import groovy.json.JsonOutput

class Events extends CodeVisitorSupport {
  List events = []
  void visitMethodCallExpression(MethodCallExpression call) {
    events << ("call:" + call.getMethodAsString())
    super.visitMethodCallExpression(call)
  }
  void visitConstantExpression(ConstantExpression e) {
    events << [kind: (e.value == null ? "null" : e.value.getClass().simpleName), value: e.value]
  }
  void visitGStringExpression(GStringExpression e) { events << "gstring"; super.visitGStringExpression(e) }
}
def results = []
args.each { path ->
  def config = new CompilerConfiguration()
  config.sourceEncoding = "UTF-8"
  def cu = new CompilationUnit(config)
  try {
    cu.addSource(new File(path))
    cu.compile(Phases.CONVERSION)
    def v = new Events()
    cu.AST.modules.each { m -> m.statementBlock.visit(v) }
    results << [file: path, ok: true, events: v.events]
  } catch (Throwable t) {
    results << [file: path, ok: false, error: t.message]
  }
}
println JsonOutput.toJson(results)
